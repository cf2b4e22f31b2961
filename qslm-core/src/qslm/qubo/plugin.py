"""Registers the built-in QUBO solvers and the ``qslm solve`` and ``qslm bench solvers``
commands. Targets are strings, so nothing here imports numpy, scipy or dimod."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "exact",
        "qslm.qubo.exact:ExactSolver",
        summary="Exhaustive enumeration in numpy blocks: the true optimum, up to 26 variables",
    )
    register(
        "anneal",
        "qslm.qubo.anneal:AnnealSolver",
        summary="Simulated annealing, all reads advancing together in numpy",
    )
    register(
        "tabu",
        "qslm.qubo.tabu:TabuSolver",
        summary="One-flip tabu search with aspiration and restarts, chains vectorised in numpy",
    )


@hookimpl
def qslm_register_commands(cli):
    from qslm.qubo.cli import bench_solvers, solve

    cli.add_command(solve)
    bench = cli.commands.get("bench")
    if bench is None:
        from qslm.qubo.cli import bench as bench_group

        cli.add_command(bench_group)
        bench = bench_group
    bench.add_command(bench_solvers)
