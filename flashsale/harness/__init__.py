"""What drives the stack from outside and judges it: the buyers (load), the contract's invariants (checks), the
races of `flashsale demo` with their faults (races), and CPU read from /proc (cpu).

The demo, the bench and the lab all use these, so a race in a notebook is the race the demo prints and the
tests check. The harness drives the stack (stack/) and reads the servers; it imports nothing above it.
"""
