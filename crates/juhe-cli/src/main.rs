#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    juhe_cli::cli::main()
}
