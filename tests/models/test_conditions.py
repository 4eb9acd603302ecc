"""Conditional flows (notebook 08): conditional layers, the conditional multi-scale model, its errors and CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from flowlib.core.testing import check_bijection, perturb
from flowlib.models.conditions import BlockSumResidual, corner_mask, downsample, half_masks, mask_condition
from flowlib.models.multiscale import FlowConfig, MultiScaleFlow, classify, make_condition
from flowlib.training import evaluate
from flowlib.training import train as train_mod
from flowlib.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from flowlib.training.evaluate import evaluate_bpd

from ..bijection_cases import CONDITIONAL_CASES, dequantized_logits
from ..conftest import require_dataset
from ..training.test_train_cli import SMALL, assert_user_error, files

KINDS = ["class", "lowres", "mask"]


# ---- layers -------------------------------------------------------------------------------------
def condition_effect(layer, x, cond, other) -> tuple[float, float]:
    """How much the output and the log-det change when ``cond`` is replaced by ``other``."""
    layer = layer.double()
    with torch.no_grad():
        (z1, ld1), (z2, ld2) = layer(x, cond), layer(x, other)
    return (z1 - z2).abs().max().item(), (ld1 - ld2).abs().max().item()


@pytest.mark.parametrize("name", sorted(CONDITIONAL_CASES))
def test_each_condition_gives_another_exact_bijection(name):
    torch.manual_seed(0)
    layer, x, cond = CONDITIONAL_CASES[name]()
    other = torch.randn_like(cond)
    for c in (cond, other):  # the log-det is checked against the Jacobian for each condition
        check_bijection(layer, x, cond=c)
    dz, dld = condition_effect(layer, x, cond, other)
    assert dz > 1e-3 and dld > 1e-3, "changing the condition must change the map and its log-det"


def test_a_layer_that_ignores_its_condition_fails_that_test():
    # negative control: a conditioner built without cond_channels accepts cond and drops it
    import flowlib as fl

    layer = perturb(fl.AffineCoupling(fl.checkerboard_mask(4, 4), fl.GatedResNet(4, 8, hidden=8)), std=0.3)
    x, cond = torch.randn(2, 4, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    check_bijection(layer, x, cond=cond)  # still a bijection...
    assert condition_effect(layer, x, cond, torch.randn_like(cond)) == (0.0, 0.0)  # ...that ignores the condition


def test_block_sum_residual_maps_the_images_that_fit_a_thumbnail_onto_all_of_r_d():
    torch.manual_seed(0)
    layer = BlockSumResidual(8, 2, alpha=1e-5)  # 4x4 blocks
    x = torch.randint(0, 256, (3, 1, 8, 8))
    x[0], x[1, :, :4] = 0, 255   # a black image and a half white one: the intervals get narrow
    v, thumb = dequantized_logits(x), downsample(x, 2).double()
    check_bijection(layer, v, cond=thumb)   # round trip, log-dets, and the Jacobian for this thumbnail
    z, logdet = layer(v, thumb)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    # any point of R^D decodes to an image that fits: each block's mean noise n lies in (0, 1)
    for scale in (1.0, 10.0):
        v_back, _ = layer.inverse(scale * torch.randn(3, 1, 8, 8, dtype=torch.float64), thumb)
        q = (torch.sigmoid(v_back) - 1e-5) / (1 - 2e-5)
        n = (F.avg_pool2d(256 * q, 4) * 16 - (thumb * 255 * 16).round()) / 16
        assert (n > 0).all() and (n < 1).all() and (q > 0).all() and (q < 1).all()
    # negative control: an image that does not fit the thumbnail has probability zero
    assert torch.isneginf(layer(v, thumb.roll(1, 0))[1]).all()
    # float32 in, float32 out, and the same map
    z32, logdet32 = layer(v.float(), thumb.float())
    assert z32.dtype == torch.float32 and torch.allclose(z32.double(), z, atol=1e-4)


def test_corner_mask_marks_one_pixel_per_block():
    m = corner_mask(6, 3)
    assert m.sum() == 4 and m[2, 2] == m[5, 5] == m[2, 5] == m[5, 2] == 1


# ---- the model ----------------------------------------------------------------------------------
def tiny_conditional(kind: str, split_prior: bool = True):
    """A tiny model of ``kind`` (``"lowres+residual"``: lowres with :class:`BlockSumResidual`), images, conditions."""
    torch.manual_seed(0)
    residual = kind == "lowres+residual"
    kind = "lowres" if residual else kind
    cfg = FlowConfig(size=8, levels=2, steps_per_level=1, hidden=8, dequantization="uniform", condition=kind,
                     num_classes=3, lowres_size=4, cond_features=4, split_prior=split_prior, lowres_residual=residual)
    model = MultiScaleFlow(cfg)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    cond = make_condition(cfg, x, labels)
    model.log_prob(x, cond)  # ActNorm initialisation
    return perturb(model, std=0.05), x, cond


@pytest.mark.parametrize("kind", [*KINDS, "lowres+residual"])
def test_conditional_model_shapes_round_trip_and_gradients(kind):
    model, x, cond = tiny_conditional(kind)
    assert model.log_prob(x, cond).shape == (6,)
    assert model.bits_per_dim(x, cond).shape == (6,)
    assert model.importance_bits_per_dim(x, 2, cond).shape == (6,)
    latents = model.encode(x, cond)
    assert torch.equal(model.decode(latents, cond), x)
    s = model.sample(6, cond=cond, temperature=0.5)
    assert s.shape == (6, 1, 8, 8) and s.dtype == torch.uint8
    model.bits_per_dim(x, cond).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", [*KINDS, "lowres+residual"])
def test_the_condition_changes_latents_likelihood_and_samples(kind):
    model, x, cond = tiny_conditional(kind)
    other = torch.tensor([1, 2, 0, 1, 2, 0]) if kind == "class" else torch.rand_like(cond)
    if kind == "mask":
        other[:, 1:] = cond[:, 1:].flip(0)  # another mask, still zeros and ones
    assert not torch.allclose(model.encode(x, cond)[-1], model.encode(x, other)[-1])
    torch.manual_seed(1)
    lp = model.log_prob(x, cond)
    torch.manual_seed(1)
    assert (lp - model.log_prob(x, other)).abs().max() > 1e-3
    g = torch.Generator().manual_seed(0)
    a = model.sample(6, cond=cond, generator=g, quantize=False)
    g = torch.Generator().manual_seed(0)
    assert (a - model.sample(6, cond=other, generator=g, quantize=False)).abs().max() > 1e-4


@pytest.mark.parametrize("split_prior", [True, False])
def test_the_class_reaches_the_priors(split_prior):
    model, x, labels = tiny_conditional("class", split_prior=split_prior)
    model.bits_per_dim(x, labels).mean().backward()
    e = model.config.cond_features
    assert model.top_prior.conv.weight.grad.abs().sum() > 0  # the coarsest latent's class-dependent prior
    if split_prior:  # the split prior's weights on the class embedding (its last E input channels)
        assert model.priors[0].conv.weight.grad[:, -e:].abs().sum() > 0
    z = [torch.zeros(1, *shape) for shape in model.latent_shapes]
    # z = 0 decodes to the most likely latents of each class: different images
    means = torch.cat([model.decode(z, torch.tensor([c]), quantize=False) for c in range(3)])
    assert (means[0] - means[1]).abs().max() > 1e-4 and (means[1] - means[2]).abs().max() > 1e-4


def test_class_log_likelihoods_and_the_bayes_classifier():
    model, x, labels = tiny_conditional("class")
    torch.manual_seed(3)
    table = model.class_log_likelihoods(x)
    assert table.shape == (6, 3)
    for c in range(3):  # the same dequantization noise as log_prob with the same seed
        torch.manual_seed(3)
        assert torch.allclose(table[:, c], model.log_prob(x, torch.full((6,), c)), atol=1e-4)
    torch.manual_seed(3)
    assert torch.equal(classify(model, x, batch_size=4), table.argmax(1))
    uncond, _, _ = tiny_conditional("lowres")
    with pytest.raises(TypeError, match="needs a class-conditional model"):
        uncond.class_log_likelihoods(x)


@pytest.mark.parametrize("kind", [*KINDS, "lowres+residual"])
def test_save_and_load_give_identical_outputs(tmp_path, kind):
    model, x, cond = tiny_conditional(kind)
    path = save_checkpoint(tmp_path / "c.pt", model, dataset="mnist")
    config = read_checkpoint(path)["config"]
    assert config["condition"] == kind.split("+")[0]  # the checkpoint says it is conditional
    assert config["lowres_residual"] == kind.endswith("+residual")
    loaded, _ = load_checkpoint(path)
    torch.manual_seed(2)
    a = model.log_prob(x, cond)
    torch.manual_seed(2)
    assert torch.equal(a, loaded.log_prob(x, cond))
    assert all(bool(m.initialized) for m in loaded.modules() if hasattr(m, "initialized"))


def test_unconditional_models_keep_their_config_and_weights_names():
    old = FlowConfig(size=8, hidden=8).to_dict()
    for name in ("condition", "num_classes", "lowres_size", "cond_features", "lowres_residual"):
        del old[name]
    assert FlowConfig.from_dict(old).condition is None
    assert FlowConfig.from_dict(old) == FlowConfig(size=8, hidden=8)  # the field matters only for "lowres"
    old_lowres = {k: v for k, v in FlowConfig(condition="lowres").to_dict().items() if k != "lowres_residual"}
    assert not FlowConfig.from_dict(old_lowres).lowres_residual  # a lowres checkpoint made before the layer existed
    keys = set(MultiScaleFlow(FlowConfig(size=8, hidden=8)).state_dict())
    assert not any(k.startswith(("cond_encoder", "top_prior")) for k in keys)
    cond_keys = set(MultiScaleFlow(FlowConfig(size=8, hidden=8, condition="class")).state_dict())
    assert keys < cond_keys


def test_shipped_checkpoints_load_and_say_whether_they_are_conditional():
    from flowlib.training.checkpoint import checkpoint_dir, read_checkpoint

    # notebook 11's flow-matching field is not a multi-scale flow (tests/training/test_train_fm.py covers it)
    shipped = [p for p in sorted(checkpoint_dir().glob("*.pt")) if "kind" not in read_checkpoint(p)["config"]]
    if not shipped:
        pytest.skip("no shipped checkpoints in this checkout")
    x = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    for path in shipped:
        model, _ = load_checkpoint(path)
        kind = path.stem.split("-")[-1]
        if kind in ("class", "lowres", "mask"):   # notebook 08's
            assert model.config.condition == kind, path.name
            with pytest.raises(TypeError, match=f"this model is conditioned on '{kind}': pass cond="):
                model.log_prob(x)
        else:
            assert model.config.condition is None, path.name
            with pytest.raises(TypeError, match="this model is unconditional"):
                model.log_prob(x, torch.tensor([0]))


# ---- building conditions ------------------------------------------------------------------------
def test_make_condition_for_each_kind():
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    low = downsample(x, 4)
    assert low.shape == (5, 1, 4, 4)
    assert torch.allclose(low[0, 0, 1, 2], x[0, 0, 2:4, 4:6].float().mean() / 255)
    with pytest.raises(ValueError, match="must be a multiple of 3"):
        downsample(x, 3)
    fixed = half_masks(5, 8, random=False)
    assert torch.equal(fixed[:, :, :4], torch.ones(5, 1, 4, 8)) and fixed[:, :, 4:].sum() == 0  # bottom hidden
    torch.manual_seed(0)
    rand = half_masks(200, 8)
    assert torch.all(rand.sum((1, 2, 3)) == 32) and len({tuple(m.flatten().tolist()) for m in rand}) == 4
    m = mask_condition(x, fixed)
    assert m.shape == (5, 2, 8, 8) and torch.equal(m[:, 1:], fixed) and m[:, :1, 4:].sum() == 0
    labels = torch.arange(5)
    assert make_condition(FlowConfig(size=8, hidden=8), x, labels) is None
    assert make_condition(FlowConfig(size=8, hidden=8, condition="class"), x, labels) is labels
    assert torch.equal(make_condition(FlowConfig(size=8, hidden=8, condition="mask"), x), m)
    with pytest.raises(ValueError, match="pass the labels"):
        make_condition(FlowConfig(size=8, hidden=8, condition="class"), x)


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, cond, error, message", [
    ("class", None, TypeError, "this model is conditioned on 'class': pass cond="),
    ("class", torch.tensor([0, 1, 2, 0, 1, 3]), ValueError, r"class labels must lie in \[0, 3\), got values from 0 to 3"),
    ("class", torch.tensor([0, 1, 2, 0, 1, -1]), ValueError, r"must lie in \[0, 3\)"),
    ("class", torch.zeros(6), TypeError, "class labels must be an integer tensor"),
    ("class", torch.zeros(6, dtype=torch.bool), TypeError, "class labels must be an integer tensor"),
    ("class", torch.zeros(6, 1, dtype=torch.long), ValueError, r"class labels must have shape \(6,\)"),
    ("class", torch.zeros(5, dtype=torch.long), ValueError, r"class labels must have shape \(6,\)"),
    ("class", [0, 1, 2, 0, 1, 2], TypeError, "cond must be a torch.Tensor"),
    ("lowres", torch.rand(6, 1, 8, 8), ValueError, r"'lowres' condition must have shape \(6, 1, 4, 4\)"),
    ("lowres", torch.zeros(6, 1, 4, 4, dtype=torch.uint8), TypeError, "is a float image in"),
    ("lowres", torch.full((6, 1, 4, 4), 2.0), ValueError, r"intensities in \[0, 1\]"),
    ("lowres", torch.full((6, 1, 4, 4), float("nan")), ValueError, r"intensities in \[0, 1\]"),
    ("mask", torch.rand(6, 1, 8, 8), ValueError, r"'mask' condition must have shape \(6, 2, 8, 8\)"),
    (None, torch.zeros(6, dtype=torch.long), TypeError, "this model is unconditional"),
])
def test_bad_conditions_raise_one_clear_error(kind, cond, error, message):
    if kind is None:
        torch.manual_seed(0)
        model = MultiScaleFlow(FlowConfig(size=8, levels=2, steps_per_level=1, hidden=8, dequantization="uniform"))
        x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    else:
        model, x, _ = tiny_conditional(kind)
    for call in (lambda: model.log_prob(x, cond), lambda: model.encode(x, cond),
                 lambda: model.sample(6, cond=cond), lambda: model.decode(model.sample_latents(6), cond)):
        with pytest.raises(error, match=message):
            call()


def test_bad_conditional_configs_and_missing_labels():
    with pytest.raises(ValueError, match=r"condition must be None or one of \['class', 'lowres', 'mask'\]"):
        FlowConfig(condition="colour")
    with pytest.raises(ValueError, match="lowres_size 5 must divide size 28"):
        FlowConfig(condition="lowres", lowres_size=5)
    with pytest.raises(ValueError, match="num_classes must be a whole number >= 1"):
        FlowConfig(condition="class", num_classes=0)
    model, x, _ = tiny_conditional("class")
    with pytest.raises(ValueError, match="pass the labels of the images"):
        evaluate_bpd(model, x)
    with pytest.raises(ValueError, match="got 2 labels for 6 images"):
        evaluate_bpd(model, x, labels=torch.tensor([0, 1]))


def test_evaluate_bpd_scores_x_given_its_condition():
    model, x, labels = tiny_conditional("class")
    torch.manual_seed(0)
    expected = model.bits_per_dim(x, labels).double().mean().item()
    torch.manual_seed(0)
    assert evaluate_bpd(model, x, labels=labels, batch_size=6) == pytest.approx(expected, rel=1e-6)


# ---- command line -------------------------------------------------------------------------------
def run(main, capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_and_evaluates_a_class_conditional_model(tmp_path, capsys):
    require_dataset("FashionMNIST")
    out = tmp_path / "c.pt"
    code, text, err = run(train_mod.main, capsys, "--dataset", "fashion-mnist", "--condition", "class", "--out",
                          str(out), "--steps", "2", "--cond-features", "4", "--deq-layers", "1", *SMALL)
    assert code == 0, err
    assert "test bits/dim given class" in text
    model, ckpt = load_checkpoint(out)
    assert model.config.condition == "class" and ckpt["dataset"] == "fashion-mnist"
    code, text, err = run(evaluate.main, capsys, "--checkpoint", str(out), "--limit", "30", "--device", "cpu",
                          "--json", "--no-progress")
    assert code == 0, err
    result = json.loads(text.strip().splitlines()[-1])
    assert result["condition"] == "class" and result["n"] == 30 and 0 <= result["accuracy"] <= 1
    assert "Bayes classifier" in text
    # resuming keeps the condition; another one is refused in one line, nothing written
    before = files(tmp_path)
    code, _, err = run(train_mod.main, capsys, "--out", str(out), "--resume", str(out), "--steps", "3",
                       "--condition", "mask", "--device", "cpu")
    assert_user_error(code, err, "which has condition = 'class'; leave out --condition")
    assert files(tmp_path) == before


@pytest.mark.parametrize("kind", ["lowres", "mask"])
def test_cli_trains_image_conditional_models(tmp_path, capsys, kind):
    require_dataset("MNIST")
    out = tmp_path / "c.pt"
    code, text, err = run(train_mod.main, capsys, "--condition", kind, "--out", str(out), "--steps", "1",
                          "--cond-features", "4", "--deq-layers", "1", *SMALL)
    assert code == 0, err
    assert f"test bits/dim given {kind}" in text
    assert load_checkpoint(out)[0].config.condition == kind


@pytest.mark.parametrize("argv, fragment", [
    (["--condition", "colour"], "argument --condition: invalid choice: 'colour'"),
    (["--condition", "class", "--num-classes", "0"], "--num-classes must be a whole number >= 1, got 0"),
    (["--condition", "lowres", "--lowres-size", "5"], "--lowres-size 5 must divide size 28"),
])
def test_bad_condition_options_fail_at_once_and_write_nothing(tmp_path, capsys, argv, fragment):
    code, out, err = run(train_mod.main, capsys, "--out", str(tmp_path / "m.pt"), "--steps", "2", *SMALL, *argv)
    assert_user_error(code, err, fragment)
    assert out == "" and files(tmp_path) == {}
