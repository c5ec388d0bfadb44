public import SluiceCore

/// Everything `sluice.yml` declares. Read in one place (``ConfigReader``); validated
/// before any I/O.
public struct SluiceConfig: Sendable {
    /// Where tables live: a SQLite file path (the default is `./sluice.db`).
    public var database: String = "sluice.db"
    /// Folder for load summaries and rejects files. The default is `.sluice`.
    public var stateDir: String = ".sluice"
    /// Declared entities by name.
    public var entities: [String: Entity] = [:]
    /// The file this came from, if any (for messages).
    public var path: String?

    public init() {}

    public func entity(_ name: String) -> Entity? { entities[name] }
}
