"""What moves when a group or a topic changes, on the session's broker (flashsale/lab/rebalance.py).

The rebalance pauses need a group coordinator that works: tansu has no KIP-848, and its classic protocol
wedges under churn (docs: measured.md), so those tests skip there. Growing a topic runs on both brokers.
"""
import pytest

from flashsale.lab import rebalance


@pytest.mark.parametrize("protocol", ["consumer", "classic"])
def test_a_member_that_joins_mid_stream_gets_its_share_and_every_message_is_still_read(stack, protocol):
    if not stack.settings.consumer_groups:
        pytest.skip("tansu has no KIP-848, and its classic group protocol wedges under churn")

    pause = rebalance.pause(stack.wired().kafka_bootstrap_servers, protocol)

    print(f"\n{pause}")  # the figures: on a busy machine they say more about the machine, so none is asserted
    assert pause.unread == 0, pause
    assert sorted(pause.shares) == [1, 1, 1], pause  # three members, three partitions, one each


def test_growing_a_topic_sends_some_keys_to_another_partition(stack):
    keys = rebalance.remapped_keys(stack.wired().kafka_bootstrap_servers, keys=100)

    assert set(keys.before) == {0, 1, 2} and set(keys.after) == {0, 1, 2, 3}
    assert 0 < keys.moved.sum() < len(keys)
