"""Checkpoint and model files: exact round trips, atomic writes, refusal of damaged or foreign files."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from ddpm_lib import _atomic, io
from ddpm_lib.config import get_config
from ddpm_lib.train import checkpoint as ckpt_mod
from ddpm_lib.train.checkpoint import (
    NonFiniteStateError,
    TrainState,
    flatten_optimizer_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer_state,
)

pytestmark = pytest.mark.one_thread

CFG = get_config("tiny", base_channels=8, norm_groups=8, batch_size=8)


def _state(step: int = 3, seed: int = 0) -> TrainState:
    model = io.build_model(CFG, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(step):
        x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        model(x, torch.tensor([5, 7])).square().mean().backward()
        opt.step()
    gen = torch.Generator().manual_seed(seed)
    return TrainState(
        config=CFG,
        step=step,
        model={k: v.clone() for k, v in model.state_dict().items()},
        ema={k: v.clone() * 0.5 for k, v in model.state_dict().items()},
        optimizer=opt.state_dict(),
        scaler=None,
        rng={"data": gen.get_state(), "noise": gen.get_state()},
        rng_devices={"data": "cpu", "noise": "cpu"},
        perm=torch.randperm(16, generator=gen),
        losses=torch.rand(step, generator=gen),
        info={"data": {"n": 16, "sha256": "x"}, "segments": []},
    )


def _assert_states_equal(a: TrainState, b: TrainState) -> None:
    assert a.config == b.config and a.step == b.step and a.info == b.info
    for x, y in ((a.model, b.model), (a.ema, b.ema), (a.rng, b.rng)):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert torch.equal(a.perm, b.perm) and torch.equal(a.losses, b.losses)
    assert a.optimizer["param_groups"] == b.optimizer["param_groups"]
    for i, per in a.optimizer["state"].items():
        assert per.keys() == b.optimizer["state"][i].keys()
        assert all(torch.equal(per[k], b.optimizer["state"][i][k]) for k in per)


def test_optimizer_state_round_trip_gives_an_equal_state_dict():
    sd = _state().optimizer
    tensors, meta = flatten_optimizer_state(sd)
    back = unflatten_optimizer_state(tensors, json.loads(json.dumps(meta)))
    assert back["param_groups"] == sd["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert back["state"].keys() == sd["state"].keys()
    for i in sd["state"]:
        assert all(torch.equal(sd["state"][i][k], back["state"][i][k]) for k in sd["state"][i])
    # a fresh optimizer accepts it and then steps exactly like the original
    model = io.build_model(CFG, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.load_state_dict(back)
    assert opt.state_dict()["param_groups"] == sd["param_groups"]


def test_checkpoint_round_trip_is_exact(tmp_path):
    state = _state()
    save_checkpoint(tmp_path / "c.safetensors", state)
    _assert_states_equal(state, load_checkpoint(tmp_path / "c.safetensors"))


def test_crash_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / io.CHECKPOINT_FILE
    old = _state(step=2)
    save_checkpoint(path, old)
    before = path.read_bytes()

    def half_then_crash(f, data):
        f.write(memoryview(data)[: len(data) // 2])
        f.flush()
        raise OSError("simulated crash in the middle of the write")

    monkeypatch.setattr(_atomic, "_write_all", half_then_crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, _state(step=4, seed=1))
    assert path.read_bytes() == before
    _assert_states_equal(old, load_checkpoint(path))
    assert [p.name for p in tmp_path.iterdir()] == [io.CHECKPOINT_FILE]  # no temp file left


def test_non_finite_state_is_never_written(tmp_path):
    path = tmp_path / io.CHECKPOINT_FILE
    good = _state(step=2)
    save_checkpoint(path, good)
    bad = _state(step=3)
    name = next(iter(bad.ema))
    bad.ema[name][...] = float("nan")
    with pytest.raises(NonFiniteStateError, match=f"ema/{name}"):
        save_checkpoint(path, bad)
    assert load_checkpoint(path).step == 2


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """A small checkpoint-format file (few tensors) whose every header byte can be flipped."""
    path = tmp_path_factory.mktemp("small") / "s.safetensors"
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4)}
    io.save_safetensors(path, tensors, {"config": "{}"}, ckpt_mod.CHECKPOINT_FORMAT)
    return path


def test_every_flipped_header_byte_is_refused(small_file, tmp_path):
    data = small_file.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert io.load_safetensors(small_file, ckpt_mod.CHECKPOINT_FORMAT).tensors["b"].sum() == 4
    bad = tmp_path / "bad.safetensors"
    for pos in range(8 + n):
        for mask in (0x01, 0x20, 0xFF):
            flipped = bytearray(data)
            flipped[pos] ^= mask
            bad.write_bytes(bytes(flipped))
            with pytest.raises(ValueError, match="bad.safetensors"):
                io.load_safetensors(bad, ckpt_mod.CHECKPOINT_FORMAT)


def test_flipped_data_byte_and_truncation_are_refused(tmp_path):
    path = tmp_path / io.CHECKPOINT_FILE
    save_checkpoint(path, _state())
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[-100] ^= 0x04
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"checkpoint.safetensors is corrupted"):
        load_checkpoint(path)
    for size in (0, 5, 8, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match=r"checkpoint.safetensors is not a valid safetensors"):
            load_checkpoint(path)


def test_foreign_and_pickle_files_are_refused(tmp_path):
    path = tmp_path / io.CHECKPOINT_FILE
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a 'ddpm_lib.checkpoint/1' file"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps({"model": [1.0, 2.0]}, protocol=4))
    with pytest.raises(ValueError, match="never pickle"):
        load_checkpoint(path)
    path.write_bytes(b"PK\x03\x04" + bytes(200))  # the zip container of torch.save
    with pytest.raises(ValueError, match="checkpoint.safetensors is not a valid safetensors"):
        load_checkpoint(path)
    # a model file is not a checkpoint either, and vice versa
    io.save_model(path, io.build_model(CFG).state_dict(), CFG)
    with pytest.raises(ValueError, match="format='ddpm_lib.model/1'"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


# ------------------------------------------------------------------------------- io.load
def _run_dir(tmp_path, config=CFG):
    model = io.build_model(config, seed=3)
    io.save_model(tmp_path / io.MODEL_FILE, model.state_dict(), config)
    io.write_json(tmp_path / io.CONFIG_FILE, config.to_dict())
    return model


def test_load_gives_the_saved_model_in_eval_mode(tmp_path):
    model = _run_dir(tmp_path)
    loaded, diffusion = io.load(tmp_path)
    assert not loaded.training and loaded.config == CFG
    assert diffusion.T == CFG.T and torch.equal(diffusion.betas, CFG.diffusion().betas)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 900])
    torch.testing.assert_close(loaded(x, t), model.eval()(x, t), rtol=0, atol=0)
    assert io.load(tmp_path / io.MODEL_FILE)[0].config == CFG  # the file path works too


def test_load_refuses_config_mismatch_naming_the_fields(tmp_path):
    _run_dir(tmp_path)
    other = get_config("tiny", base_channels=8, norm_groups=8, batch_size=8, lr=0.5, T=500)
    io.write_json(tmp_path / io.CONFIG_FILE, other.to_dict())
    with pytest.raises(ValueError, match=r"T \(500 vs 1000\).*lr \(0.5 vs 0.002\)"):
        io.load(tmp_path)
    (tmp_path / io.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="config.json: invalid config"):
        io.load(tmp_path)


def test_load_refuses_missing_unexpected_and_misshaped_tensors(tmp_path):
    model = _run_dir(tmp_path)
    sd = dict(model.state_dict())
    dropped = sorted(sd)[0]
    del sd[dropped]
    sd["extra.weight"] = torch.zeros(2)
    sd["conv_in.weight"] = torch.zeros(3, 1, 3, 3)
    io.save_model(tmp_path / io.MODEL_FILE, sd, CFG)
    with pytest.raises(ValueError) as info:
        io.load(tmp_path)
    msg = str(info.value)
    assert f"missing tensors: {dropped}" in msg and "unexpected tensors: extra.weight" in msg
    assert "conv_in.weight (file [3, 1, 3, 3], model [8, 1, 3, 3])" in msg


def test_load_refuses_garbage_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="model.safetensors not found"):
        io.load(tmp_path)
    _run_dir(tmp_path)
    data = (tmp_path / io.MODEL_FILE).read_bytes()
    (tmp_path / io.MODEL_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="model.safetensors is not a valid safetensors"):
        io.load(tmp_path)
    save_file({"w": torch.zeros(1)}, str(tmp_path / io.MODEL_FILE))
    with pytest.raises(ValueError, match="model.safetensors is not a 'ddpm_lib.model/1' file"):
        io.load(tmp_path)
