"""`fleetwarden status` and `fleetwarden doctor`: what runs on the fleet, what is wrong, and what to do."""
