#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferrocast_fuzz_targets::whip_sdp(data);
});
