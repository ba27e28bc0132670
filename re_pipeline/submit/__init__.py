"""Stage 7: runs combined (ensemble) and written as the leaderboard's CSV (submission), each validated
against the test file."""
