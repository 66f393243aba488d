//! The `smart-imaging` binary: the command line of the library of the same name (`src/cli.rs`).

#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    smart_imaging::cli::main()
}
