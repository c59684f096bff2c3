//! SSE through SSE4.2 (being written).

use iced_x86::Instruction;

use super::Handler;

pub(crate) fn select(_insn: &Instruction) -> Option<Handler> {
    None
}
