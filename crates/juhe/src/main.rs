#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    juhe::cli::main()
}
