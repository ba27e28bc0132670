"""What a run leaves behind: the run folder and its index (runs), leaderboards, the per-class reports, the
HTML report and the run browser, all read back for `re-pipeline runs` and `reproduce`."""
