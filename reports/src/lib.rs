//! HTML reports with plots for generated molecule sets and RL runs. Not built yet.
