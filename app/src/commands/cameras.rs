//! `inspecta cameras`: the cameras this box has and their modes, with the `[source]`
//! section that opens each.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per camera instead of text.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "gstreamer")]
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;

    use anyhow::Context as _;
    use inspecta_pipeline::source::cameras::{Camera, cameras};

    let found = cameras().context("cannot list the cameras")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for camera in &found {
            serde_json::to_writer(&mut out, camera).context("writing JSON")?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        writeln!(
            out,
            "no cameras found (is one plugged in, and may this user open /dev/video*? \
             the video group can)"
        )?;
    }
    for Camera {
        name,
        device,
        class,
        modes,
    } in &found
    {
        writeln!(out, "{name} ({class})")?;
        for mode in modes {
            let size = match (mode.width, mode.height) {
                (Some(w), Some(h)) => format!("{w}x{h}"),
                _ => "any size".to_owned(),
            };
            let rates = if mode.rates.is_empty() {
                "any rate".to_owned()
            } else {
                mode.rates.join(", ")
            };
            writeln!(out, "  {:<6} {size:>9}  {rates} fps", mode.format)?;
        }
        match device {
            Some(device) => writeln!(
                out,
                "  [source]\n  kind = \"v4l2\"\n  device = \"{device}\"\n"
            )?,
            None => writeln!(
                out,
                "  (no V4L2 device node: open it with kind = \"pipeline\")\n"
            )?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "gstreamer"))]
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this build of Inspecta lists cameras through GStreamer: rebuild with the `gstreamer` feature"
    )
}
