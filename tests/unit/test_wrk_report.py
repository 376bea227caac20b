"""wrk's report, read: a run in which no answer came back has no latency, not a latency of 0 ms."""
from flashsale.bench.wrk import report

# Printed by wrk 4.1 against a server that accepts connections and never answers.
NO_ANSWER = """Running 2s test @ http://127.0.0.1:43463/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.04s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
"""

SOME = NO_ANSWER.replace("50%    0.00us", "50%    1.50ms").replace("99%    0.00us", "99%    2.10s").replace(
    "0 requests in", "1200 requests in").replace("Requests/sec:      0.00", "Requests/sec:    600.00") + \
    "  Non-2xx or 3xx responses: 7\n  Socket errors: connect 0, read 1, write 0, timeout 2\n"


def test_a_run_with_no_answer_has_no_latency_rather_than_zero_milliseconds():
    result = report(NO_ANSWER)
    assert (result.requests, result.requests_per_s, result.p50_ms, result.p99_ms) == (0, 0.0, None, None)


def test_latencies_are_read_in_milliseconds_and_errors_add_non_2xx_answers_to_socket_errors():
    result = report(SOME)
    assert (result.requests, result.requests_per_s, result.p50_ms, result.p99_ms, result.errors) == \
        (1200, 600.0, 1.5, 2100.0, 10)
