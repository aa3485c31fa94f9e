#![no_main]

#[path = "../targets/input.rs"]
// Each target uses some of the helpers.
#[allow(dead_code)]
mod input;
#[path = "../targets/acl.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
