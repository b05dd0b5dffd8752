"""What ``cartsim task=NAME`` runs: one ``function(run_cfg, output_dir)`` per task (app layer).

A task is the edge where a composed :class:`~cartsim.config.RunConfig` meets the library:
it calls the front doors (:func:`cartsim.simulate`, :func:`cartsim.run_trial`, ...), writes
the files and prints what a user reads. ``cartsim.cli.TASKS`` maps task names to them:

* ``simulate`` - :func:`cartsim.tasks.simulate.run_simulate`;
* ``trial`` - :func:`cartsim.tasks.trial.run_trial_task`;
* ``report`` - :func:`cartsim.tasks.report.run_report_task`;
* ``fit`` - :func:`cartsim.fitting.task.run_fit_task`;
* ``sweep``, ``sensitivity`` - :mod:`cartsim.sweep.task`;
* ``simulate`` with ``engine=stochastic|agent`` - :mod:`cartsim.stochastic.task`.

:mod:`cartsim.tasks.common` holds what several tasks share (the engine's cohort simulator,
the all-patients-failed check).
"""
