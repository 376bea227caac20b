"""Redis Cluster readiness: every script the kit runs touches the keys of one hash slot, all named in KEYS.

In Redis Cluster a script runs on the node holding its keys' slot; keys of two slots fail (CROSSSLOT), and a
key the script makes up itself is not checked at all. The sale's keys share the hash tag `{sale:N}`.
"""
import re

from redis.crc import key_slot

from flashsale.rules import reservation
from flashsale.rules.reservation import SaleKeys
from flashsale.sale import Sale

SCRIPTS = {"reserve": reservation.RESERVE_LUA, "release": reservation.RELEASE_LUA}


class Recorder:
    """Pure bookkeeping: which keys each script call is given (no server: the question is the names)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def register_script(self, lua):
        return lambda keys, args, client: self.calls.append(list(keys))

    def pipeline(self, transaction=False):
        recorder, first = self, len(self.calls)

        class Pipe:
            def execute(self):  # one reply per call made through this pipeline
                return [[b"RESERVED", 1]] * (len(recorder.calls) - first)
        return Pipe()


def test_every_script_call_of_the_inventory_rule_names_keys_of_one_slot():
    recorder = Recorder()
    reservation.reserve_all(recorder, SaleKeys(7), [("o1", "alice", 1), ("o2", "bob", 1)], per_user_limit=1)
    reservation.release_all(recorder, SaleKeys(7), [("o1", "alice", 1)])
    assert len(recorder.calls) == 3
    for keys in recorder.calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys


def test_the_scripts_touch_only_the_keys_they_are_given():
    for name, lua in SCRIPTS.items():
        touched = re.findall(r"redis\.call\('\w+',\s*([^,)]+)", lua)
        assert touched and all(k.strip().startswith("KEYS[") for k in touched), (name, touched)


def test_a_sales_keys_share_the_hash_tag_of_its_id():
    keys = Sale(saleId=7, productId="P", name="phone", initialStock=1, perUserLimit=1).keys
    assert keys.tag == "{sale:7}"
    assert len({key_slot(k.encode()) for k in (keys.stock, keys.decisions, keys.user_units)}) == 1
