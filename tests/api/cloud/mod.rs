//! Cloud secret stores, each against an emulator or a protocol fake of its service.

#[cfg(feature = "aws")]
mod aws;
