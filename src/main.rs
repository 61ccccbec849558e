//! Entry point: parse flags, run the command, exit with its code.

use clap::Parser;

fn main() {
    let cli = dualwrite::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => rt.block_on(dualwrite::cli::main(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            dualwrite::exit::INFRA
        }
    };
    std::process::exit(code);
}
