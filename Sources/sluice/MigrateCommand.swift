import ArgumentParser
import SluiceRuntime
import SluiceConfig

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the control-plane schema (also done on every start).",
        discussion: "Safe to run while other processes start: migrations run under a lock, each once.\n\nExamples:\n  sluice migrate --database postgres://u@db/warehouse"
    )

    @OptionGroup var shared: SharedOptions

    func run() async throws {
        let config = try shared.start()
        do {
            try await Runtime.with(config) { _ in }  // migrates on the way in
            print("control plane is up to date")
        } catch {
            throw fail("\(error)")
        }
    }
}
