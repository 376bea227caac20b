"""The gateway's background tasks are held and watched: one that dies is named, with what killed it."""
import asyncio
import gc

from confluent_kafka import KafkaError

from flashsale.services.supervisor import Supervisor


def unretrieved(loop_errors: list[dict]) -> list[str]:
    return [context["message"] for context in loop_errors if "never retrieved" in context["message"]]


def run(scenario):
    """Run `scenario(supervisor)`; return the supervisor and what the event loop complained about."""
    complaints: list[dict] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: complaints.append(context))
        supervisor = Supervisor()
        await scenario(supervisor)
        gc.collect()  # a task whose exception nobody retrieved complains when it is collected
        supervisor.close()  # the server stops: asyncio.run cancels whatever still runs
        return supervisor

    return asyncio.run(main()), complaints


async def dies():
    await asyncio.sleep(0)
    raise RuntimeError("the broker went away for good")


async def runs_forever():
    await asyncio.Event().wait()


def test_a_task_that_dies_is_named_with_its_error_and_its_exception_is_retrieved():
    async def scenario(supervisor):
        supervisor.watch("fan-out", asyncio.get_running_loop().create_task(dies()))
        supervisor.watch("poller", asyncio.get_running_loop().create_task(runs_forever()))
        await asyncio.sleep(0.01)

    supervisor, complaints = run(scenario)
    assert not supervisor.healthy
    assert supervisor.problems() == ["fan-out: died: RuntimeError: the broker went away for good"]
    assert unretrieved(complaints) == []


def test_tasks_stopped_after_close_are_not_failures():
    async def scenario(supervisor):
        task = supervisor.watch("poller", asyncio.get_running_loop().create_task(runs_forever()))
        await asyncio.sleep(0)
        supervisor.close()
        task.cancel()
        await asyncio.sleep(0)

    supervisor, _ = run(scenario)
    assert supervisor.healthy and supervisor.problems() == []


def test_a_task_that_is_cancelled_or_returns_while_the_server_runs_has_died_too():
    async def scenario(supervisor):
        cancelled = supervisor.watch("fan-out", asyncio.get_running_loop().create_task(runs_forever()))
        supervisor.watch("read", asyncio.get_running_loop().create_task(asyncio.sleep(0)))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0.01)

    supervisor, _ = run(scenario)
    assert supervisor.failures.keys() == {"fan-out", "read"}
    assert "cancelled" in supervisor.failures["fan-out"] and "stopped" in supervisor.failures["read"]


def test_a_fatal_kafka_error_is_a_failure_and_a_passing_one_is_not():
    supervisor = Supervisor()
    on_error = supervisor.kafka_errors("kafka producer")
    on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert supervisor.healthy
    on_error(KafkaError(KafkaError._FATAL, "UNKNOWN_PRODUCER_ID: the broker forgot this producer", fatal=True))
    [problem] = supervisor.problems()
    assert problem.startswith("kafka producer: fatal Kafka error _FATAL") and "UNKNOWN_PRODUCER_ID" in problem
