"""The architectures, listed once. Adding one = a file in models/ (its config class beside its
Core) plus one line here; the experiment config, `build_model`, `rbench model summary` and the
report all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Union
from collections.abc import Callable

from pydantic import Field

from models.act import Core, CoreConfig
from models.hrm import HRM, HRMConfig
from models.looped import Looped, LoopedConfig
from models.transformer import Transformer, TransformerConfig, resolve_size
from models.trm import TRM, TRMConfig


@dataclass(frozen=True)
class Arch:
    config: type[CoreConfig]
    core: type[Core]
    recursive: bool  # applies its weights more than once per supervision step
    resolve: Callable | None = None  # (cfg, meta) -> the config actually built (e.g. size matching)


ARCHS: dict[str, Arch] = {
    "transformer": Arch(TransformerConfig, Transformer, recursive=False, resolve=resolve_size),
    "trm": Arch(TRMConfig, TRM, recursive=True),
    "hrm": Arch(HRMConfig, HRM, recursive=True),
    "looped": Arch(LoopedConfig, Looped, recursive=True),
}

ARCH_NAMES: tuple[str, ...] = tuple(ARCHS)
RECURSIVE_ARCHS: tuple[str, ...] = tuple(n for n, a in ARCHS.items() if a.recursive)

# The `model:` section of an experiment: one of the configs above, chosen by its `arch` key.
ModelConfig = Annotated[Union[tuple(a.config for a in ARCHS.values())], Field(discriminator="arch")]  # noqa: UP007

for _name, _arch in ARCHS.items():  # each config's `arch` default is its registry name
    assert _arch.config.model_fields["arch"].default == _name, _name
