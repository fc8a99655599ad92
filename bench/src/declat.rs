//! `edgecam-bench decoder-latency`: how many frames Chromium's H.264 decoders hold before
//! output (issue 16 item 4), for streams whose SPS says different things about reordering.
//!
//! It encodes a test clip with ffmpeg (libx264, with and without B-frames) and with
//! edgecam's own openh264 encoder, makes variants of each by rewriting the SPS with
//! `edgecam::codec::sps` (level 5.1 without `bitstream_restriction`, as some cameras send;
//! then that stream after edgecam's low-delay rewrite), packs every variant as WebCodecs
//! chunks and as edgecam's fMP4 (`edgecam::codec::fmp4`), and runs
//! `tests/browser/decoder-latency.mjs` in headless Chromium, which feeds them at 25 fps.
//! It prints a Markdown table; the numbers of record are in `bench/README.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use edgecam::codec::fmp4::{Fragmenter, init_segment};
use edgecam::codec::h264::{NAL_SPS, nal_units};
use edgecam::codec::sps::{self, Restriction};
use edgecam::codec::{EncoderSettings, H264Encoder, I420Frame};
use serde_json::{Value, json};

/// Options of `decoder-latency`.
#[derive(Debug, clap::Args)]
pub struct DeclatArgs {
    /// Frames per stream (at 25 fps).
    #[arg(long, default_value_t = 100)]
    frames: u32,
    /// Picture width.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Where the streams go (default: a `declat` directory under the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// One access unit: its bytes (Annex B) and its place in presentation order.
struct Au {
    /// The access unit, Annex B.
    data: Vec<u8>,
    /// Index in presentation order (equals the decode index without B-frames).
    pts: u32,
    /// IDR access unit.
    key: bool,
}

/// One stream to measure.
struct Stream {
    /// Name in the table.
    name: String,
    /// The access units in decode order.
    aus: Vec<Au>,
    /// Whether presentation order differs from decode order (no MSE then: edgecam's fMP4
    /// has no composition offsets).
    reordered: bool,
    /// The SPS changes mid-stream (WebCodecs only: the page's MSE run appends one init
    /// segment).
    sps_changes: bool,
}

/// Prepares the streams, runs the page, prints the table and the raw results.
pub fn run(args: &DeclatArgs) -> anyhow::Result<()> {
    let dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("edgecam-declat"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut streams = Vec::new();
    for (name, bframes) in [
        ("x264 High 4.0, no B-frames", 0),
        ("x264 High 4.0, 2 B-frames", 2),
    ] {
        let aus = x264_clip(&dir, args, bframes)?;
        streams.extend(variants(name, aus));
    }
    streams.extend(variants(
        "openh264 (edgecam test pattern)",
        openh264_clip(args)?,
    ));
    write_streams(&dir, &streams)?;
    let result = run_browser(&dir)?;
    println!("{}", markdown(&streams, &result));
    println!("\n{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The stream as encoded, at level 5.1 without `bitstream_restriction`, and that one after
/// edgecam's low-delay rewrite (when the rewrite applies).
fn variants(name: &str, aus: Vec<Au>) -> Vec<Stream> {
    let reordered = aus.iter().enumerate().any(|(i, a)| a.pts as usize != i);
    let l51: Vec<Au> = aus
        .iter()
        .map(|a| map_sps(a, |s| sps::rewrite(s, None, Some(51)).ok()))
        .collect();
    let fixed: Vec<Au> = l51
        .iter()
        .map(|a| map_sps(a, |s| sps::low_delay(s).ok().flatten()))
        .collect();
    let changed = fixed.iter().zip(&l51).any(|(a, b)| a.data != b.data);
    // The observed-order rule: the first GOP as sent, the rewrite from the second keyframe.
    let mut keys = 0;
    let later: Vec<Au> = l51
        .iter()
        .map(|a| {
            keys += usize::from(a.key);
            // Unchanged before (whatever the SPS-only rule would do), rewritten after.
            let seen = keys >= 2;
            map_sps(a, |s| {
                seen.then(|| sps::low_delay_if(s, true).ok().flatten())?
            })
        })
        .collect();
    let stream = |name: String, aus: Vec<Au>, sps_changes: bool| Stream {
        name,
        aus,
        reordered,
        sps_changes,
    };
    let mut out = vec![
        stream(format!("{name}: as encoded"), aus, false),
        stream(
            format!("{name}: level 5.1, no bitstream_restriction"),
            l51,
            false,
        ),
    ];
    if changed {
        out.push(stream(
            format!("{name}: level 5.1, no restriction, then edgecam's rewrite"),
            fixed,
            false,
        ));
    }
    if !reordered {
        out.push(stream(
            format!("{name}: level 5.1, no restriction, the rewrite from the 2nd keyframe"),
            later,
            true,
        ));
    }
    out
}

/// The access unit with every SPS replaced by `f(sps)` where that gives one.
fn map_sps(au: &Au, f: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Au {
    let mut data = Vec::with_capacity(au.data.len() + 8);
    for nal in nal_units(&au.data) {
        match (nal.nal_type() == NAL_SPS).then(|| f(nal.body)).flatten() {
            Some(new) => {
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(&new);
            }
            None => data.extend_from_slice(nal.with_start_code),
        }
    }
    Au {
        data,
        pts: au.pts,
        key: au.key,
    }
}

/// Runs a tool and fails with its stderr when it fails.
fn tool(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// A libx264 clip (testsrc2, 2 s GOP, access unit delimiters) in decode order, with each
/// access unit's presentation index from the MP4 it was first written to.
fn x264_clip(dir: &Path, args: &DeclatArgs, bframes: u32) -> anyhow::Result<Vec<Au>> {
    let mp4 = dir.join(format!("x264-bf{bframes}.mp4"));
    let size = format!("testsrc2=size={}x{}:rate=25", args.width, args.height);
    tool(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                &size,
            ])
            .args([
                "-frames:v",
                &args.frames.to_string(),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
            ])
            .args([
                "-profile:v",
                "high",
                "-level",
                "4.0",
                "-bf",
                &bframes.to_string(),
                "-g",
                "50",
            ])
            .args(["-x264-params", "aud=1", "-pix_fmt", "yuv420p"])
            .arg(&mp4),
    )?;
    let pts = tool(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v"])
            .args(["-show_entries", "packet=pts,flags", "-of", "csv=p=0"])
            .arg(&mp4),
    )?;
    let packets: Vec<(i64, bool)> = String::from_utf8_lossy(&pts)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.trim().parse().ok()?, f.next()?.contains('K')))
        })
        .collect();
    let annexb = tool(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
            .arg(&mp4)
            .args([
                "-c",
                "copy",
                "-bsf:v",
                "h264_mp4toannexb",
                "-f",
                "h264",
                "-",
            ]),
    )?;
    let aus = split_at_aud(&annexb);
    if aus.len() != packets.len() {
        bail!("{} access units but {} packets", aus.len(), packets.len());
    }
    let mut order: Vec<i64> = packets.iter().map(|p| p.0).collect();
    order.sort_unstable();
    Ok(aus
        .into_iter()
        .zip(&packets)
        .map(|(data, (pts, key))| Au {
            data,
            pts: order.binary_search(pts).unwrap_or(0) as u32,
            key: *key,
        })
        .collect())
}

/// Splits an Annex B stream into access units at the delimiters (parameter sets the
/// bitstream filter put in front of a delimiter go with the access unit that follows).
pub(crate) fn split_at_aud(data: &[u8]) -> Vec<Vec<u8>> {
    let mut aus: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(data) {
        if nal.nal_type() == 9 && has_slice {
            aus.push(std::mem::take(&mut cur));
            has_slice = false;
        }
        has_slice |= (1..=5).contains(&nal.nal_type());
        cur.extend_from_slice(nal.with_start_code);
    }
    if has_slice {
        aus.push(cur);
    }
    aus
}

/// The same picture size from edgecam's openh264 encoder (what the test-pattern source
/// sends): a moving gradient, a keyframe every 50 frames.
fn openh264_clip(args: &DeclatArgs) -> anyhow::Result<Vec<Au>> {
    let settings = EncoderSettings {
        width: args.width,
        height: args.height,
        fps: 25,
        bitrate_kbps: 800,
        gop: 50,
    };
    let mut enc = H264Encoder::new(settings)?;
    let mut pic = I420Frame::new(args.width, args.height)?;
    let mut aus = Vec::new();
    for i in 0..args.frames {
        for (n, y) in pic.y.iter_mut().enumerate() {
            *y = ((n as u32 + i * 7) % 200 + 16) as u8;
        }
        if let Some(f) = enc.encode(&pic, i == 0)? {
            aus.push(Au {
                data: f.data.to_vec(),
                pts: aus.len() as u32,
                key: f.keyframe,
            });
        }
    }
    Ok(aus)
}

/// What the SPS of a stream's first keyframe says, for the table (a stream whose SPS
/// changes says so).
fn sps_summary(s: &Stream) -> String {
    let Some(nal) = s
        .aus
        .iter()
        .flat_map(|a| nal_units(&a.data))
        .find(|n| n.nal_type() == NAL_SPS)
    else {
        return "no SPS".into();
    };
    match sps::parse(nal.body) {
        Ok(i) => {
            let r = match i.restriction {
                Some(Restriction {
                    max_num_reorder_frames: r,
                    max_dec_frame_buffering: b,
                }) => {
                    format!("reorder {r}, dec_buf {b}")
                }
                None => "no restriction".into(),
            };
            let then = if s.sps_changes {
                "; reorder 0 from the 2nd keyframe"
            } else {
                ""
            };
            format!(
                "profile {} level {} poc {} refs {}; {r}{then}",
                i.profile_idc, i.level_idc, i.pic_order_cnt_type, i.max_num_ref_frames
            )
        }
        Err(e) => format!("unparsable: {e}"),
    }
}

/// Writes `data.bin` and `manifest.json` for the page.
fn write_streams(dir: &Path, streams: &[Stream]) -> anyhow::Result<()> {
    let mut blob = Vec::new();
    let mut put = |bytes: &[u8]| {
        let r = json!([blob.len(), bytes.len()]);
        blob.extend_from_slice(bytes);
        r
    };
    let mut list = Vec::new();
    for s in streams {
        let first = s.aus.first().context("empty stream")?;
        let codec = edgecam::codec::h264::avc_codec_string(&first.data)
            .context("no SPS in the first access unit")?;
        let chunks: Vec<Value> = s
            .aus
            .iter()
            .map(|a| json!({"range": put(&a.data), "key": a.key, "pts": a.pts}))
            .collect();
        let mse = if s.reordered || s.sps_changes {
            Value::Null
        } else {
            let init = init_segment(&first.data)?;
            let mut f = Fragmenter::new();
            let mut out = Vec::new();
            let init_range = put(&init.bytes);
            let frags: Vec<Value> = s
                .aus
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    f.fragment(&a.data, i as i64 * 40_000, a.key, &mut out);
                    put(&out)
                })
                .collect();
            json!({"mime": init.mime(), "init": init_range, "frags": frags})
        };
        list.push(json!({"name": s.name, "codec": codec, "sps": sps_summary(s), "chunks": chunks, "mse": mse}));
    }
    std::fs::write(dir.join("data.bin"), &blob)?;
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&json!({"streams": list}))?,
    )?;
    Ok(())
}

/// Runs the page and returns its `RESULT` document.
fn run_browser(dir: &Path) -> anyhow::Result<Value> {
    let script_dir = crate::repo_dir().join("tests/browser");
    let out = tool(
        Command::new("node")
            .arg(script_dir.join("decoder-latency.mjs"))
            .arg(dir)
            .current_dir(&script_dir)
            .stderr(Stdio::inherit()),
    )?;
    let text = String::from_utf8_lossy(&out);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("the script printed no RESULT line")?;
    Ok(serde_json::from_str(line)?)
}

/// The table: one row per stream and path.
fn markdown(streams: &[Stream], result: &Value) -> String {
    let mut t = String::from(
        "| stream | SPS | path | chunks in at first output | steady lag (frames, median / max) |\n|---|---|---|---|---|\n",
    );
    let empty = Vec::new();
    for r in result["results"].as_array().unwrap_or(&empty) {
        let name = r["stream"].as_str().unwrap_or("");
        let sps = streams
            .iter()
            .find(|s| s.name == name)
            .map(sps_summary)
            .unwrap_or_default();
        let path = match (r["path"].as_str(), r["optimizeForLatency"].as_bool()) {
            (Some("webcodecs"), Some(true)) => "WebCodecs, optimizeForLatency".to_string(),
            (Some("webcodecs"), _) => "WebCodecs".to_string(),
            _ => format!("MSE, fMP4 ({} presented)", r["presented"]),
        };
        t.push_str(&format!(
            "| {name} | {sps} | {path} | {} | {} / {} |\n",
            r["firstAfter"], r["steadyLag"], r["maxLag"]
        ));
    }
    t
}
