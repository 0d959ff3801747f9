"""The methods FIGA is compared with: SFT, DPO, reward models, PPO and fine-grained PPO."""
