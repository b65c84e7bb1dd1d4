"""``snakemake plan``: what a grid costs before it runs (GPU-hours, wall time, disk, judge dollars), and
planned against measured once cells have run."""
