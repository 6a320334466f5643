"""Config: validation of every field kind, presets, JSON round trip, config_mismatch."""

import dataclasses
import json

import pytest

from ddpm_lib.config import (
    DIFFUSION_FIELDS,
    MODEL_FIELDS,
    PRESETS,
    Config,
    config_mismatch,
    get_config,
)

FIELD_NAMES = [f.name for f in dataclasses.fields(Config)]


def test_presets_exist_and_are_valid():
    assert {"tiny", "mnist", "mnist-cfg"} <= set(PRESETS)
    for name, cfg in PRESETS.items():
        assert isinstance(cfg, Config)
        assert get_config(name) == cfg
    assert PRESETS["mnist"].num_classes is None and PRESETS["mnist"].label_dropout == 0.0
    cfg = PRESETS["mnist-cfg"]
    assert cfg.num_classes == 10 and cfg.label_dropout == 0.1
    # mnist-cfg is mnist plus conditioning and nothing else
    assert config_mismatch(PRESETS["mnist"], cfg) == ["num_classes", "label_dropout"]


def test_presets_are_read_only():
    with pytest.raises(TypeError):
        PRESETS["new"] = Config()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny"].lr = 1.0  # type: ignore[misc]


def test_get_config_overrides_and_revalidates():
    cfg = get_config("tiny", batch_size=7, schedule="cosine")
    assert cfg.batch_size == 7 and cfg.schedule == "cosine"
    assert PRESETS["tiny"].batch_size != 7 or PRESETS["tiny"].schedule != "cosine"
    with pytest.raises(ValueError, match="batch_size"):
        get_config("tiny", batch_size=0)


def test_get_config_unknown_name_or_field_lists_allowed():
    with pytest.raises(ValueError, match="mnist-cfg") as e:
        get_config("cifar")
    assert "tiny" in str(e.value)
    with pytest.raises(ValueError, match="batchsize") as e:
        get_config("tiny", batchsize=3)
    assert "batch_size" in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        # ints: type, lower bound, bool is not an int
        ("base_channels", 0, r"base_channels must be an int >= 1, got 0"),
        ("base_channels", 16.0, r"base_channels must be an int >= 1, got 16.0"),
        ("num_res_blocks", True, r"num_res_blocks must be an int >= 1, got True"),
        ("T", 0, r"T must be an int >= 1"),
        ("batch_size", -4, r"batch_size"),
        ("warmup_steps", -1, r"warmup_steps must be an int >= 0"),
        ("train_steps", 0, r"train_steps"),
        ("seed", -1, r"seed must be an int in \[0, "),
        # tuples
        ("channel_mults", (), r"channel_mults must have 1 to 3 entries"),
        ("channel_mults", (1, 2, 2, 2), r"channel_mults must have 1 to 3 entries"),
        ("channel_mults", (1, 0), r"channel_mults\[1\] must be an int >= 1, got 0"),
        ("channel_mults", 2, r"channel_mults must be a tuple"),
        ("attention_resolutions", (8,), r"attention_resolutions .* got 8"),
        ("attention_resolutions", (7, 7), r"must not repeat"),
        # divisibility
        ("num_heads", 5, r"num_heads must divide the 96 channels"),
        ("norm_groups", 5, r"norm_groups must divide"),
        # floats: range, open/closed ends, NaN, type
        ("dropout", 1.0, r"dropout must be a finite number in \[0.0, 1.0\), got 1.0"),
        ("dropout", -0.1, r"dropout"),
        ("dropout", float("nan"), r"dropout"),
        ("lr", 0.0, r"lr must be a finite number > 0.0, got 0.0"),
        ("lr", "1e-3", r"lr must be a finite number > 0.0, got \'1e-3\'"),
        ("weight_decay", -1e-4, r"weight_decay"),
        ("grad_clip", 0.0, r"grad_clip"),
        ("ema_decay", 1.0, r"ema_decay must be a finite number in \[0.0, 1.0\)"),
        ("beta_1", 0.0, r"beta_1 must be a finite number in \(0.0, 1.0\)"),
        ("beta_T", 1.0, r"beta_T must be a finite number in \(0.0, 1.0\)"),
        ("beta_T", 5e-5, r"beta_T must be in \[beta_1, 1\)"),
        # choices and bools
        ("schedule", "quadratic", r"schedule must be one of \('linear', 'cosine'\)"),
        ("precision", "fp8", r"precision must be one of"),
        ("compile", 1, r"compile must be True or False"),
        # conditioning
        ("num_classes", 0, r"num_classes must be an int >= 1"),
        ("label_dropout", 0.1, r"label_dropout must be 0.0 for an unconditional model"),
    ],
)
def test_each_field_is_validated(field, value, match):
    base = PRESETS["mnist"]
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(base, **{field: value})


def test_valid_edge_values_are_accepted_and_normalised():
    cfg = dataclasses.replace(
        PRESETS["mnist"],
        channel_mults=[1, 2],  # a list from JSON becomes a tuple
        attention_resolutions=[],
        lr=1,  # an int where a float is expected becomes a float
        grad_clip=None,
        dropout=0.0,
        ema_decay=0.0,
        beta_1=0.02,
        beta_T=0.02,
        num_classes=10,
        label_dropout=0.0,
    )
    assert cfg.channel_mults == (1, 2) and cfg.attention_resolutions == ()
    assert isinstance(cfg.lr, float) and cfg.lr == 1.0
    assert cfg.resolutions == (28, 14)
    hash(cfg)  # frozen with tuple fields: hashable


def test_attention_resolution_must_be_reached_by_channel_mults():
    with pytest.raises(ValueError, match=r"\(28, 14\); got 7"):
        dataclasses.replace(PRESETS["mnist"], channel_mults=(1, 2), attention_resolutions=(7,))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_from_dict_json_round_trip(name):
    cfg = PRESETS[name]
    d = json.loads(json.dumps(cfg.to_dict()))
    assert set(d) == set(FIELD_NAMES)
    back = Config.from_dict(d)
    assert back == cfg
    assert isinstance(back.channel_mults, tuple)


def test_from_dict_rejects_unknown_and_missing_keys():
    d = PRESETS["tiny"].to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\], missing keys \[\]"):
        Config.from_dict({**d, "colour": "red"})
    del d["lr"]
    with pytest.raises(ValueError, match=r"missing keys \['lr'\]"):
        Config.from_dict(d)
    with pytest.raises(ValueError, match="mapping"):
        Config.from_dict([("lr", 1.0)])  # type: ignore[arg-type]


def test_from_dict_validates_values():
    d = {**PRESETS["tiny"].to_dict(), "T": -5}
    with pytest.raises(ValueError, match="T must be an int >= 1, got -5"):
        Config.from_dict(d)


def test_config_mismatch():
    a = PRESETS["mnist"]
    assert config_mismatch(a, a) == []
    b = dataclasses.replace(a, lr=1e-3, base_channels=32, T=500)
    # declaration order, independent of the order of the changes
    assert config_mismatch(a, b) == ["base_channels", "T", "lr"]
    assert config_mismatch(b, a) == ["base_channels", "T", "lr"]
    assert config_mismatch(a, b, fields=MODEL_FIELDS) == ["base_channels"]
    assert config_mismatch(a, b, fields=MODEL_FIELDS + DIFFUSION_FIELDS) == ["base_channels", "T"]
    with pytest.raises(ValueError, match="unknown Config fields"):
        config_mismatch(a, b, fields=["width"])
    with pytest.raises(ValueError, match="must be a Config"):
        config_mismatch(a, a.to_dict())  # type: ignore[arg-type]


def test_field_groups_name_real_fields():
    assert set(MODEL_FIELDS) <= set(FIELD_NAMES)
    assert set(DIFFUSION_FIELDS) <= set(FIELD_NAMES)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_diffusion_follows_the_schedule_fields(schedule):
    from ddpm_lib import schedule as sched

    cfg = get_config("tiny", T=50, schedule=schedule, beta_1=1e-3, beta_T=0.05)
    d = cfg.diffusion()
    assert d.T == 50
    expected = (
        sched.linear_betas(50, 1e-3, 0.05) if schedule == "linear" else sched.cosine_betas(50)
    )
    assert d.betas.shape == (51,)
    assert float((d.betas.cpu() - expected).abs().max()) == 0.0
