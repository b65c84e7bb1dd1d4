# A few lines at the end of a run: what finished, where the tables are, what failed (mlit.run_summary).
onsuccess:
    from mlit.run_summary import summary

    print(summary(RESULTS, ok=True), file=sys.stderr)


onerror:
    from mlit.run_summary import summary

    print(summary(RESULTS, ok=False, log_path=log), file=sys.stderr)
