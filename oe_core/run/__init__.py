"""Run plumbing shared by both trainers: the engine, checkpoints, devices, DDP, seeds."""
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .device import DistInfo, autocast, cpu_flags, cpu_model, dist_info_from_env, native_bf16, resolve_device
from .engine import Engine, unwrap
from .seed import derive_seed, seed_everything
from .task import StepContext, Task

__all__ = ["Engine", "Task", "StepContext", "unwrap", "RunConfig", "load_checkpoint", "save_checkpoint",
           "has_checkpoint", "resolve_device", "autocast", "cpu_flags", "cpu_model", "native_bf16", "DistInfo",
           "dist_info_from_env", "derive_seed", "seed_everything"]
