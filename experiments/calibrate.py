"""Calibrate the cd7 model and population to the published CD7 CAR-T trials.

Usage (``.venv/bin/python experiments/calibrate.py [mode] [--config FILE] [override ...]``)::

    calibrate.py                    check the current defaults: one row per target with z
    calibrate.py --params best.yaml check a parameter file written by --fit
    calibrate.py --design N         run (or resume, or extend) the Sobol design to N points
    calibrate.py --fit              Nelder-Mead from the best design points; writes best.yaml
    calibrate.py --loto             leave-one-trial-out table and its coverage check
    calibrate.py --loto --refine-iter 10
                                    ... with a short refinement without each held-out trial
    calibrate.py --importance N     simulate N draws of the posterior's importance proposal
                                    (the next adaptive batch once a batch holds N)
    calibrate.py --posterior        the posterior ensemble (ensemble.csv, shipped) and the
                                    out-of-sample coverage of its model and predictive intervals
    calibrate.py --posterior --propagate trial_pan2021
                                    run a trial over the ensemble: cohort and model intervals
    calibrate.py --ensemble         history matching instead: the design points no figure
                                    rules out (history_matching.csv; --propagate works too)

Settings come from ``experiments/calibration.yaml``; results go to its ``output_dir``.
Extra arguments are Hydra overrides applied to every trial (e.g. ``+model.params.rho_max=0.7``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from cartsim.calibration import (
    TARGETS,
    Space,
    coverage,
    ensemble,
    evaluate,
    format_loto,
    format_propagation,
    format_rows,
    leave_one_trial_out,
    loglik_matrix,
    propagate,
    provenance,
    read_ensemble,
    refine,
    refine_out_of_sample,
    run_design,
    write_best,
    write_ensemble,
)
from cartsim.calibration.design import DesignStore, check_model, model_fingerprint
from cartsim.calibration.run import shipped_value

ROOT = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--design", type=int, metavar="N", help="run/resume the design to N points")
    mode.add_argument("--fit", action="store_true", help="refine from the best design points")
    mode.add_argument("--loto", action="store_true", help="leave-one-trial-out table")
    mode.add_argument("--ensemble", action="store_true", help="write the plausible parameter sets")
    mode.add_argument("--importance", type=int, metavar="N",
                      help="simulate/resume N draws of the posterior's importance proposal")
    mode.add_argument("--posterior", action="store_true",
                      help="posterior ensemble and its leave-one-trial-out coverage")
    mode.add_argument("--restamp", type=int, metavar="K",
                      help="after a change of the model's source that should not change its "
                           "results: simulate K stored points of every store again and, when "
                           "every figure is identical, stamp the stores with the current model")
    ap.add_argument("--propagate", metavar="EXPERIMENT",
                    help="with --posterior or --ensemble: run this trial experiment over "
                         "the ensemble just written")
    ap.add_argument("--refine-iter", type=int, default=0, metavar="K",
                    help="with --loto: a K-simulation refinement without each held-out trial")
    ap.add_argument("--params", help="a best.yaml whose overrides the check applies")
    ap.add_argument("--replicates", type=float, help="override the config's replicates")
    ap.add_argument("--config", default=str(Path(__file__).with_name("calibration.yaml")))
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every trial")
    return ap


def main(argv=None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.propagate and not (args.ensemble or args.posterior):
        parser.error("--propagate goes with --posterior or --ensemble")
    if args.refine_iter and not args.loto:
        parser.error("--refine-iter goes with --loto")
    cfg = yaml.safe_load(Path(args.config).read_text())
    reps = float(args.replicates or cfg["replicates"])
    fixed = [*cfg.get("fixed", []), *args.overrides]
    space = Space.from_config(cfg["free"], resolve=shipped_value)
    out = ROOT / cfg["output_dir"]
    store = out / cfg["design"]["file"]
    ens_cfg = cfg["ensemble"]
    excluded = list(cfg.get("exclude_from_fit", []))
    unknown = sorted(set(excluded) - {t.key for t in TARGETS})
    if unknown:
        sys.exit(f"calibration.yaml: exclude_from_fit={unknown} is not accepted: expected "
                 "target keys (experiment/statistic) of cartsim.calibration.TARGETS")
    fit_targets = [t for t in TARGETS if t.key not in excluded]  # the objective
    cfg = {**cfg, "replicates": reps, "fixed": fixed}  # what was run, for the provenance

    if args.restamp is not None:
        from cartsim.calibration.design import restamp

        names = [cfg["design"]["file"], *cfg.get("importance", {}).get("files", [])]
        for p in (out / n for n in names):
            if p.exists():
                now = model_fingerprint()
                state = "already current" if restamp(p, args.restamp) == now else "restamped"
                print(f"{p.name}: {state} (model {now})")
        return
    if args.design is not None:
        df = run_design(space, args.design, store, seed=int(cfg["design"]["seed"]),
                        replicates=reps, fixed=fixed)
        print(f"{len(df)} points in {store}")
        return
    if args.importance is not None or args.posterior:
        _posterior(args, cfg, space, store, out, fit_targets, reps, fixed)
        return
    if args.fit or args.loto or args.ensemble:
        if not store.exists():
            sys.exit(f"no design at {store}: run --design N first")
    if args.fit:
        df = refine(space, store, starts=int(cfg["fit"]["starts"]), objective=fit_targets,
                    maxiter=int(cfg["fit"]["maxiter"]), replicates=reps, fixed=fixed)
        ll = loglik_matrix(df, fit_targets).sum(axis=1)
        best = df.iloc[int(ll.argmax())]
        x = best[list(space.keys)].to_numpy(float)
        rows = evaluate(fixed, free=space.overrides(x), replicates=reps)
        print(format_rows(rows))
        path = write_best(space, x, out / "best.yaml",
                          provenance(cfg, point=int(best["id"]), source=str(best["source"])),
                          rows)
        print(f"best point {int(best['id'])} ({best['source']}) written to {path}")
        return
    if args.loto:
        df = _frame(store)
        rows = leave_one_trial_out(df, fit_targets)
        if args.refine_iter:
            _warn(check_model(DesignStore.open(store, TARGETS).meta, "--loto --refine-iter",
                              strict=False))
            rows = refine_out_of_sample(df, space, rows, targets=fit_targets,
                                        maxiter=args.refine_iter,
                                        replicates=reps, fixed=fixed)
        cover = coverage(df, fit_targets, cut=float(ens_cfg["cut"]),
                         fallback=int(ens_cfg["fallback"]))
        print(format_loto(rows, cover))
        return
    if args.ensemble:
        df = _frame(store)
        members = ensemble(df, space, fit_targets, cut=float(ens_cfg["cut"]),
                           fallback=int(ens_cfg["fallback"]))
        meta = DesignStore.open(store, TARGETS).meta
        path = write_ensemble(members, out / "history_matching.csv",
                              provenance(cfg, design_points=len(df), model=meta["model"]))
        note = "" if members.attrs["cut_met"] else (
            f" (no point has max |z| < {ens_cfg['cut']}: the {len(members)} least implausible "
            "were kept)")
        print(f"{len(members)} of {members.attrs['candidates']} candidate points (design and best "
              f"refined) in the ensemble{note}: {path}")
        if args.propagate:
            _warn(check_model(meta, "--propagate", strict=False))
            members, _ = read_ensemble(path)
            print(format_propagation(propagate(
                args.propagate, members, space, replicates=reps, fixed=fixed,
                k=int(ens_cfg["members"]))))
        return
    params = []
    if args.params:
        params = [f"{k}={v}" for k, v in
                  yaml.safe_load(Path(args.params).read_text())["overrides"].items()]
    print(format_rows(evaluate(fixed, free=params, replicates=reps)))


def _posterior(args, cfg, space, store, out, fit_targets, reps, fixed) -> None:
    """--importance N (the next batch of draws) and --posterior (cartsim.calibration.posterior)."""
    from cartsim.calibration.posterior import (
        effective_sample_size,
        format_coverage,
        format_marginals,
        importance_weights,
        marginals,
        posterior_coverage,
        proposal_from_design,
        proposal_from_draws,
        resample,
        run_importance,
    )

    icfg = cfg["importance"]
    paths = [out / f for f in icfg["files"]]
    have = [p for p in paths if p.exists()]

    def read(ps):
        frames = [_frame(p) for p in ps]
        props = [(DesignStore.open(p, TARGETS).meta["proposal"], len(f))
                 for p, f in zip(ps, frames)]
        return pd.concat(frames, ignore_index=True), props

    if args.importance is not None:
        # resume the last started batch while it is short, else start the next one
        todo = [p for p in paths if not p.exists()]
        if have and len(_frame(have[-1])) < args.importance:
            path, batch = have[-1], len(have) - 1
            proposal = DesignStore.open(path, TARGETS).meta["proposal"]
        elif todo:
            path, batch = todo[0], len(have)
            if batch == 0:
                if not store.exists():
                    sys.exit(f"no design at {store}: run --design N first (the first proposal "
                             "is built from it)")
                proposal = proposal_from_design(_frame(store), space, fit_targets,
                                                centre=space.start, ess=float(icfg["ess"]),
                                                inflate=float(icfg["inflate"]))
            else:
                df, props = read(have)
                proposal = proposal_from_draws(df, space, props, fit_targets,
                                               ess=float(icfg["adapt_ess"]),
                                               inflate=float(icfg["adapt_inflate"]))
        else:
            sys.exit(f"every batch of calibration.yaml: importance.files ({icfg['files']}) holds "
                     f"{args.importance} draws or more: add a file to run another batch")
        run_importance(space, args.importance, path, proposal, seed=int(icfg["seed"]),
                       batch=batch, replicates=reps, fixed=fixed)
        have = [p for p in paths if p.exists()]
        df, props = read(have)
        w = importance_weights(df, space, props, fit_targets)
        print(f"{len(df)} draws in {len(have)} batch(es); effective sample size "
              f"{effective_sample_size(w):.1f}")
        return
    if not have:
        sys.exit(f"no importance draws at {paths[0]}: run --importance N first")
    df, props = read(have)
    meta = DesignStore.open(have[0], TARGETS).meta
    w = importance_weights(df, space, props, fit_targets)
    ess = effective_sample_size(w)
    print(f"{len(df)} draws in {len(have)} batch(es); effective sample size {ess:.1f}; "
          f"largest weight {w.max():.3f}")
    print(format_coverage(posterior_coverage(df, space, props, fit_targets)))
    print(format_marginals(marginals(df, w, space), ess))
    members = resample(df, w, int(icfg["members"]), space, seed=int(icfg["seed"]))
    path_e = write_ensemble(members, out / "ensemble.csv", provenance(
        cfg, kind="posterior (importance sampling, systematic resampling, random order)",
        draws=len(df), batches=[p.name for p in have],
        effective_sample_size=round(ess, 2), model=meta["model"]))
    print(f"{len(members)} equally weighted posterior members ({members['id'].nunique()} "
          f"distinct draws) written to {path_e}")
    if args.propagate:
        _warn(check_model(meta, "--propagate", strict=False))
        print(format_propagation(propagate(
            args.propagate, members, space, replicates=reps, fixed=fixed,
            k=int(icfg["members"]))))


def _warn(message: str) -> None:
    if message:
        print(f"warning: {message}", file=sys.stderr)


def _frame(store: Path):
    return DesignStore.open(store, TARGETS).frame()


if __name__ == "__main__":
    main()
