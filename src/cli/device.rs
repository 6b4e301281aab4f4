//! `--device`: where a command's tensors live.

/// The `--device` flag shared by the commands that run the model.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArg {
    /// cpu, cuda (GPU 0), cuda:N, or auto (a GPU when this build has the `cuda` feature and
    /// one answers, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
}

impl DeviceArg {
    /// The named device, opened. `auto` in a CUDA build says why it fell back to the CPU.
    pub fn open(&self) -> anyhow::Result<model::Device> {
        if self.device == "auto" && cfg!(feature = "cuda") {
            return Ok(model::device_by_name("cuda").unwrap_or_else(|e| {
                eprintln!("note: --device auto runs on the CPU: {e}");
                model::Device::Cpu
            }));
        }
        Ok(model::device_by_name(&self.device)?)
    }
}
