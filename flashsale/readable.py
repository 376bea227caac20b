"""Typed records that still read like the dicts they replaced: `sale["saleId"]` as well as `sale.saleId`.

Notebooks (and scripts written against the old dicts) index them; new code uses the attributes. `as_dict()` is
each record's JSON form, the one the contract gives for `--json`.
"""
import dataclasses
from typing import Any


class Readable:
    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]  # on dataclasses only
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: str) -> bool:
        """As a dict had the key: a field that is set (an optional one left None was not in the dict)."""
        return self.get(key) is not None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]  # on dataclasses only
