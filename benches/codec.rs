//! CPU cost per frame of the test pattern: render alone, and render + H.264 encode, at the
//! two candidate demo sizes. `cargo bench --bench codec`.

use criterion::{Criterion, criterion_group, criterion_main};
use edgecam::codec::{EncoderSettings, H264Encoder};
use edgecam::ingest::testpattern::TestPattern;
use std::hint::black_box;

fn per_frame(c: &mut Criterion) {
    for (w, h, kbps) in [(640u32, 360u32, 1000u32), (1280, 720, 2000)] {
        let mut pattern = TestPattern::new("bench", w, h).expect("pattern");
        let mut n = 0u64;
        c.bench_function(&format!("render {w}x{h}"), |b| {
            b.iter(|| {
                n += 1;
                black_box(pattern.render(n).y[0])
            })
        });
        let settings = EncoderSettings {
            width: w,
            height: h,
            fps: 25,
            bitrate_kbps: kbps,
            gop: 50,
        };
        let mut encoder = H264Encoder::new(settings).expect("encoder");
        c.bench_function(&format!("render+encode {w}x{h}"), |b| {
            b.iter(|| {
                n += 1;
                let picture = pattern.render(n);
                let out = encoder.encode(picture, false).expect("encodes");
                black_box(out.map(|f| f.data.len()))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = per_frame
}
criterion_main!(benches);
