//! REINFORCE tuning of the SMILES GPT on chemistry rewards. Not built yet: see the RL issue.
