//! Fixed guest/host addresses shared by the native runner and the emu runner.
//!
//! The same snippet runs at the same addresses on the host CPU (in a forked
//! child, with `MAP_FIXED_NOREPLACE` mappings) and under emu, so addresses,
//! pushed return addresses and fault addresses compare directly.

/// One page of code: the snippet, then (native) a jump to the epilogue or
/// (emu) `hlt`.
pub const CODE: u64 = 0x10_0000_0000;
/// Two read-write data pages (a page-crossing access stays mapped).
pub const DATA: u64 = 0x20_0000_0000;
pub const DATA_LEN: u64 = 0x2000;
/// A read-only page right after the data pages (write faults).
pub const RO: u64 = DATA + 0x2000;
/// Unmapped: read faults.
pub const UNMAPPED: u64 = DATA + 0x3000;
/// A read-write page below 4 GiB for 32-bit (0x67) addressing.
pub const LOW: u64 = 0x4000_0000;
/// emu's address-space size.
pub const LIMIT: u64 = 1 << 40;

/// Size of the data image a case starts from: DATA (2 pages), RO, LOW.
pub const IMAGE_LEN: usize = 0x4000;
/// The part of the image that can change and is compared: DATA and LOW.
pub const OUT_DATA_LEN: usize = 0x3000;

/// Image offset of a guest address inside DATA, RO or LOW.
pub fn image_offset(addr: u64) -> Option<usize> {
    if (DATA..DATA + 0x3000).contains(&addr) {
        Some((addr - DATA) as usize)
    } else if (LOW..LOW + 0x1000).contains(&addr) {
        Some((addr - LOW) as usize + 0x3000)
    } else {
        None
    }
}

/// Special-value areas of the data image (offsets from DATA).
pub const AREA_F32: u64 = 0x000;
pub const AREA_F64: u64 = 0x100;
pub const AREA_F80: u64 = 0x200;
/// x87 control words with every exception masked.
pub const AREA_FCW: u64 = 0x300;
/// MXCSR values with every exception masked (one with a reserved bit: #GP).
pub const AREA_MXCSR: u64 = 0x340;
/// Stack pointer range used by default (middle of the two data pages).
pub const STACK_LO: u64 = DATA + 0xc00;
pub const STACK_HI: u64 = DATA + 0x1400;
