"""Fault injection against stacks of their own (a package, so its stack stops when its last test is done)."""
