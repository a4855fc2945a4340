"""Lightning's FSDP strategy on CPU processes (gloo), for tests only.

PyTorch's FSDP runs on CPU with gloo; Lightning 2.6 does not let it, in three places this subclass changes
and nothing else, so the tests run the strategy the GPU configs use (sharding, layer wrapping, full
state-dict checkpoints) on CPU processes:

- its accelerator connector refuses ``FSDPStrategy`` with ``accelerator="cpu"`` by an exact type check
  (``type(strategy) is FSDPStrategy``), which a subclass passes;
- it wraps the model with ``device_id=root_device.index``, None on CPU, which FSDP refuses ("needs a non-CPU
  accelerator device"): here ``device_id`` is the CPU;
- it gathers full state dicts with ``offload_to_cpu=True``, which on CPU clones freed memory (a crash):
  here without offloading, the weights being on the CPU already.
"""

from contextlib import contextmanager
from unittest import mock

import torch
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies import fsdp as lightning_fsdp
from torch.distributed import fsdp

_FSDP = fsdp.FullyShardedDataParallel


class _AnyFSDP(type):
    # Lightning asks isinstance(module, FullyShardedDataParallel) to see whether a model is wrapped already.
    def __instancecheck__(cls, instance) -> bool:
        return isinstance(instance, _FSDP)


class _CPUFullyShardedDataParallel(_FSDP, metaclass=_AnyFSDP):
    def __init__(self, *args, device_id=None, **kwargs) -> None:
        super().__init__(*args, device_id=device_id or torch.device("cpu"), **kwargs)


def _full_state_dict_without_offload(module, world_size: int, rank0_only: bool = True):
    return _FSDP.state_dict_type(
        module=module,
        state_dict_type=fsdp.StateDictType.FULL_STATE_DICT,
        state_dict_config=fsdp.FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
        optim_state_dict_config=fsdp.FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
    )


@contextmanager
def _on_cpu():
    with (
        mock.patch.object(fsdp, "FullyShardedDataParallel", _CPUFullyShardedDataParallel),
        mock.patch.object(lightning_fsdp, "_get_full_state_dict_context", _full_state_dict_without_offload),
    ):
        yield


class CPUFSDPStrategy(FSDPStrategy):
    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        with _on_cpu():
            return super()._setup_model(model)

    def lightning_module_state_dict(self):
        with _on_cpu():
            return super().lightning_module_state_dict()

    def optimizer_state(self, optimizer):
        with _on_cpu():
            return super().optimizer_state(optimizer)

    def load_checkpoint(self, *args, **kwargs):
        with _on_cpu():
            return super().load_checkpoint(*args, **kwargs)
