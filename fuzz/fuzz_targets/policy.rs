#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| policies::fuzzing::policy(data));
