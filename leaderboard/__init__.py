"""The static HTML leaderboard: a separate program that reads run result documents (results.json)."""
