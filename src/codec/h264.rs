//! Just enough H.264 Annex B parsing for ingest: split an access unit into NAL units, tell
//! keyframes apart, and make sure SPS/PPS travel in front of every keyframe.

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR (keyframe) coded slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The four-byte Annex B start code written in front of parameter sets that are re-inserted.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One NAL unit found in an Annex B buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nal<'a> {
    /// The NAL unit with its start code, exactly as it appeared in the buffer.
    pub with_start_code: &'a [u8],
    /// The NAL unit without its start code (header byte first); never empty.
    pub body: &'a [u8],
}

impl Nal<'_> {
    /// The NAL unit type (the low five bits of the header byte).
    pub fn nal_type(&self) -> u8 {
        self.body[0] & 0x1f
    }
}

/// Finds the next start code at or after `from`: returns (start of the start code, start of
/// the NAL body). A zero byte in front of `00 00 01` counts as part of a 4-byte start code.
fn next_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let begin = if i > from && data[i - 1] == 0 {
                i - 1
            } else {
                i
            };
            return Some((begin, i + 3));
        }
        i += 1;
    }
    None
}

/// Iterates over the NAL units of an Annex B buffer. Bytes before the first start code and
/// empty NAL units are skipped; trailing zero bytes stay with the NAL unit they follow.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = Nal<'_>> {
    let mut next = next_start_code(data, 0);
    std::iter::from_fn(move || {
        loop {
            let (begin, body_start) = next?;
            next = next_start_code(data, body_start);
            let end = next.map_or(data.len(), |(b, _)| b);
            if end > body_start {
                return Some(Nal {
                    with_start_code: &data[begin..end],
                    body: &data[body_start..end],
                });
            }
        }
    })
}

/// The WebCodecs codec string (`avc1.PPCCLL`) for an Annex B access unit that carries an SPS,
/// from its profile, constraint flags and level; `None` when the unit has no SPS.
pub fn avc_codec_string(au: &[u8]) -> Option<String> {
    let sps = nal_units(au).find(|n| n.nal_type() == NAL_SPS)?;
    sps_codec_string(sps.body)
}

/// The codec string of one SPS (NAL body, header byte first): `avc1.PPCCLL`.
pub fn sps_codec_string(sps: &[u8]) -> Option<String> {
    let b = sps.get(1..4)?;
    Some(format!("avc1.{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
}

/// True when the access unit contains an IDR slice.
pub fn is_keyframe(au: &[u8]) -> bool {
    nal_units(au).any(|n| n.nal_type() == NAL_IDR)
}

/// What [`ParamSets::normalize`] made of one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The payload as parts to concatenate: re-inserted SPS and PPS (empty when the access
    /// unit carried its own) and the access unit itself, uncopied.
    pub parts: [&'a [u8]; 3],
    /// The access unit holds an IDR slice.
    pub keyframe: bool,
    /// First keyframe seen, or the SPS/PPS differ from the previous ones: decoders must reset.
    pub params_changed: bool,
}

/// Remembers the latest SPS and PPS of a stream so every keyframe can carry them, and
/// drops what cannot be decoded yet (anything before the first keyframe with known params).
#[derive(Debug, Default)]
pub struct ParamSets {
    /// Latest SPS with a 4-byte start code; empty until one is seen.
    sps: Vec<u8>,
    /// Latest PPS with a 4-byte start code; empty until one is seen.
    pps: Vec<u8>,
    /// A keyframe has been let through, so delta frames may follow.
    started: bool,
    /// Params changed (or none reported yet) since the last keyframe let through.
    changed: bool,
}

impl ParamSets {
    /// An empty cache: the first keyframe will be reported as `params_changed`.
    pub fn new() -> Self {
        ParamSets {
            changed: true,
            ..ParamSets::default()
        }
    }

    /// Records `body` (a NAL without start code) into `slot`; true when it differs.
    fn remember(slot: &mut Vec<u8>, body: &[u8]) -> bool {
        if slot.len() == body.len() + START_CODE.len() && slot[START_CODE.len()..] == *body {
            return false;
        }
        slot.clear();
        slot.extend_from_slice(&START_CODE);
        slot.extend_from_slice(body);
        true
    }

    /// Looks at one access unit: learns its SPS/PPS, and returns the payload to store, with
    /// SPS/PPS put in front of a keyframe that lacks them. Returns `None` for an access unit
    /// that cannot be decoded from here (before the first usable keyframe, or with no slice).
    pub fn normalize<'a>(&'a mut self, au: &'a [u8]) -> Option<Normalized<'a>> {
        let (mut has_sps, mut has_pps, mut keyframe, mut has_slice) = (false, false, false, false);
        for nal in nal_units(au) {
            match nal.nal_type() {
                NAL_SPS => {
                    has_sps = true;
                    self.changed |= Self::remember(&mut self.sps, nal.body);
                }
                NAL_PPS => {
                    has_pps = true;
                    self.changed |= Self::remember(&mut self.pps, nal.body);
                }
                NAL_IDR => {
                    keyframe = true;
                    has_slice = true;
                }
                NAL_SLICE => has_slice = true,
                _ => {}
            }
        }
        if !has_slice || (!keyframe && (!self.started || self.changed)) {
            return None;
        }
        if keyframe && (self.sps.is_empty() || self.pps.is_empty()) {
            return None;
        }
        let params_changed = keyframe && self.changed;
        if keyframe {
            self.started = true;
            self.changed = false;
        }
        let sps: &[u8] = if keyframe && !has_sps { &self.sps } else { &[] };
        let pps: &[u8] = if keyframe && !has_pps { &self.pps } else { &[] };
        Some(Normalized {
            parts: [sps, pps, au],
            keyframe,
            params_changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 1, 2];
    const PPS: &[u8] = &[0, 0, 1, 0x68, 3];
    const IDR: &[u8] = &[0, 0, 0, 1, 0x65, 9, 9, 0];
    const P: &[u8] = &[0, 0, 0, 1, 0x41, 7];

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let au = [SPS, PPS, IDR].concat();
        let types: Vec<u8> = nal_units(&au).map(|n| n.nal_type()).collect();
        assert_eq!(types, vec![7, 8, 5]);
        let first = nal_units(&au).next().map(|n| n.with_start_code);
        assert_eq!(first, Some(SPS));
        assert!(is_keyframe(&au));
        assert!(!is_keyframe(P));
    }

    #[test]
    fn drops_until_keyframe_and_reinserts_params() {
        let mut ps = ParamSets::new();
        assert!(ps.normalize(P).is_none(), "delta before any keyframe");
        let first = [SPS, PPS, IDR].concat();
        let n = ps
            .normalize(&first)
            .map(|n| (n.keyframe, n.params_changed, n.parts[0].len()));
        assert_eq!(n, Some((true, true, 0)));
        let n = ps.normalize(P).map(|n| (n.keyframe, n.parts.concat()));
        assert_eq!(n, Some((false, P.to_vec())));
        // A bare IDR gets the cached SPS/PPS in front and is not a params change.
        let n = ps
            .normalize(IDR)
            .map(|n| (n.params_changed, n.parts.concat()));
        let expected = [&[0, 0, 0, 1, 0x67, 1, 2][..], &[0, 0, 0, 1, 0x68, 3], IDR].concat();
        assert_eq!(n, Some((false, expected)));
        // A new SPS marks the next keyframe as changed.
        let new_sps: &[u8] = &[0, 0, 0, 1, 0x67, 1, 3];
        let au = [new_sps, IDR].concat();
        assert_eq!(ps.normalize(&au).map(|n| n.params_changed), Some(true));
    }

    #[test]
    fn codec_string_comes_from_the_sps() {
        // SPS: profile 0x42 (baseline), constraints 0xc0, level 0x1f.
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xaa, 0, 0, 1, 0x68, 0xce,
        ];
        assert_eq!(avc_codec_string(&au).as_deref(), Some("avc1.42c01f"));
        assert_eq!(avc_codec_string(&[0, 0, 1, 0x65, 1, 2]), None);
    }
}
