"""Small loops for instruction counts (valgrind --tool=callgrind): issue 12's before/after
figures, stable on a shared machine where wall-clock times are not.

    valgrind --tool=callgrind python -m benchmarks.profiling.single_appends 2000
    valgrind --tool=callgrind python -m benchmarks.profiling.reads sqlite 2   # minus reads=0
    python -m benchmarks.profiling.batch_bytes FULL      # bytes written per event (W2 shape)
    python -m benchmarks.profiling.pg_single_appends 2000  # client CPU per PostgreSQL append

Divide the difference between two runs' totals (e.g. reads=2 minus reads=0) by the number of
operations to get instructions per operation.
"""
