import ArgumentParser

/// `sluice version`: the version and the commit it was built from.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version and the commit this binary was built from.")

    func run() {
        print(BuildInfo.line)
    }
}
