"""What ``unsup train`` and ``unsup eval`` report about a model on a split: the figures, as JSON
and as one readable line."""

from __future__ import annotations

from typing import Any

from unsup.data import TensorDataset
from unsup.models.base import LikelihoodModel, nats_to_bits_per_dim
from unsup.train import evaluate
from unsup.train.runs import original_view


def evaluate_report(model, ds, meta: dict[str, Any], batch_size: int, desc: str | None = None,
                    time_limit: float | None = None) -> dict[str, Any]:
    """The test figures of ``model`` on ``ds`` (NLL, bits/dim, exact or bound, standard errors,
    the latent report, a partial evaluation's subset) as a JSON-able dict."""
    m = evaluate(model, ds, batch_size, desc=desc, time_limit=time_limit)
    result = {"model": meta.get("model"), "data": meta.get("data", {}).get("name"),
              "representation": meta.get("data", {}).get("representation"),
              "split": ds.split, "n": m.pop("n"), "step": meta.get("step")}
    if "partial" in m:  # --eval-time ran out: a uniform random subset of the split
        result["partial"] = {**m.pop("partial"), "seconds": time_limit}
    if "nll" in m:
        result.update(nll_nats=m["nll"], bpd=m["bpd"], exact=m["exact"], likelihood=m["likelihood"],
                      nats_per_dim=m["loss"])
        if "nll_se" in m:  # Monte-Carlo standard error of an importance-sampled estimate
            result.update(nll_se=m["nll_se"], bpd_se=nats_to_bits_per_dim(m["nll_se"], model.spec.dims))
    else:
        result.update(m)
    if isinstance(ds, TensorDataset):  # KL, active units: posterior collapse is visible
        n = min(len(ds), 2000)
        if report := model.latent_report(ds.x[:n]):
            result["latent"] = {**report, "examples": n}
    return result


def original_data_report(model, meta: dict[str, Any], split: str, batch_size: int,
                         data_dir: str | None = None, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """For a run trained on data derived from another run (a prior over VQ-VAE codes, a model of a
    VAE's latents): the model of the original data and, when it has a likelihood, its bound there
    (``image_bpd_bound``); ``(None, {})`` for any other run."""
    view = original_view(model, meta, device)
    if view is None:
        return None, {}
    combined, data = view
    if not isinstance(combined, LikelihoodModel):  # decoded latents: samples, no likelihood
        return combined, {}
    if data_dir:
        data.root = data_dir
    m = evaluate(combined, data.load(split), batch_size)
    return combined, {"image_bpd_bound": m["bpd"], "image_nll_nats_bound": m["nll"]}


def describe(r: dict[str, Any]) -> str:
    """One line (two for a partial evaluation) for people."""
    if "bpd" in r:
        kind = {"exact": "exact", "estimate": "an estimate (the model's log_prob estimates log p, "
                "neither a bound nor exact)"}.get(r.get("likelihood", "exact" if r["exact"] else ""),
                                                 "upper bound (the model's log_prob is a lower bound)")
        se = f" ± {r['nll_se']:.3f} (s.e.)" if "nll_se" in r else ""
        text = (f"{r['split']}: {r['bpd']:.4f} bits/dim, NLL {r['nll_nats']:.3f}{se} nats/example "
                f"({r['nats_per_dim']:.4f} nats/dim) over {r['n']} examples, {kind}")
        if "image_bpd_bound" in r:
            text += f"; images under the VQ-VAE: <= {r['image_bpd_bound']:.4f} bits/dim"
        if "latent" in r:
            lat = r["latent"]
            text += (f"; on the first {lat['examples']}: KL {lat['kl']:.3f} nats, "
                     f"{lat['active_units']}/{lat['latent_dims']} active units")
        return text + _describe_partial(r) + _describe_quality(r)
    text = f"{r['split']}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items() if isinstance(v, float))
    return text + _describe_partial(r) + _describe_quality(r)


def _describe_partial(r: dict[str, Any]) -> str:
    if "partial" not in r:
        return ""
    p = r["partial"]
    se = (f"; the standard error of this subset's mean NLL is {p['nll_se']:.3f} nats/example"
          if "nll_se" in p else f"; the standard error of its mean loss is {p['loss_se']:.4g}")
    return (f"\n  (on {p['n']} of {p['of']} {r['split']} examples, a uniform random subset: the "
            f"{p['seconds']:.0f} s of --eval-time ran out{se}; `unsup eval RUN` scores them all)")


def _describe_quality(r: dict[str, Any]) -> str:
    if "sample_quality" not in r:
        return ""
    q, names = r["sample_quality"], ("fd", "kid", "precision", "recall", "density", "coverage")
    rows = [f"\n  {q['n']} samples in {q['features']} (classifier test accuracy "
            f"{100 * q['classifier']['test_accuracy']:.1f} %):"]
    for label, key in (("samples", "samples"), ("floor (train vs test)", "floor")):
        rows.append(f"    {label:<22}" + ", ".join(f"{k} {q[key][k]:.4g}" for k in names))
    if "class_accuracy" in q["samples"]:
        rows.append(f"    samples in the class they were drawn for: "
                    f"{100 * q['samples']['class_accuracy']:.1f} %")
    return "\n".join(rows)
