public import SluiceConfig
public import SluiceCore
public import SluiceWatch
public import ServiceLifecycle
import Synchronization

extension WatchSpec {
    /// The spec of a declared watch (`name`), and/or of a source and entity given on the command
    /// line; every default in one place.
    public static func from(config: SluiceConfig, name: String?, source: String?, into: String?) throws(SluiceError) -> WatchSpec {
        var declared = WatchSettings()
        var watchName = name
        if let n = name ?? source, let d = config.watches[n] {
            declared = d
            watchName = n
        }
        guard let src = (declared.source != nil && source == watchName ? nil : source) ?? declared.source,
              let entity = into ?? declared.into else {
            let typo = (name ?? source).map { Suggestion.hint(for: $0, in: config.watches.keys) } ?? ""
            throw SluiceError(.invalidArgument, "give a SOURCE (s3://bucket/prefix/, gs://…, gdrive://FOLDER_ID/ or a folder) and --into ENTITY, or the name of a watch declared in sluice.yml\(typo)")
        }
        var spec = WatchSpec(name: watchName ?? Self.defaultName(src, entity), source: src, entity: entity)
        spec.rules.glob = declared.glob.map(Glob.init)
        if let (folder, glob) = Glob.split(location: src) {
            // `s3://bucket/input/*.json`: the prefix, and a pattern in it (which wins over a
            // declared watch's glob: it is the location as the user wrote it now).
            spec.source = folder
            spec.rules.glob = Glob(glob)
        }
        spec.rules.minAge = declared.minAge
        spec.rules.onChange = declared.onChange.flatMap(ChangePolicy.init(rawValue:)) ?? .reprocess
        spec.rules.maxFiles = declared.maxFiles
        spec.rules.maxBytes = declared.maxBytes
        spec.rules.watermark = declared.watermark ?? false
        spec.interval = declared.interval ?? spec.interval
        spec.raw = declared.raw
        spec.format = declared.format
        spec.mode = declared.mode
        spec.maxAttempts = config.worker.maxAttempts
        spec.mapping = config.mappings[entity]
        spec.ndjsonEntities = Set(config.entities.values.filter { $0.csv != CSVDialect() }.map(\.name))
        spec.avroEntities = Self.avroEntities(spec.mapping, config: config)
        return spec
    }

    /// The mapping's entities whose parts can be Avro: declared columns, each read from a
    /// mapping column of exactly its name (Avro binds fields by exact name; an undeclared
    /// entity infers its types from CSV text, and a near match is CSV's to resolve).
    static func avroEntities(_ mapping: JSONMapping?, config: SluiceConfig) -> Set<String> {
        guard let mapping else { return [] }
        var out: Set<String> = []
        for t in mapping.targets {
            guard let e = config.entity(t.entity), !e.schema.columns.isEmpty else { continue }
            let names = Set(t.columns.map(\.name))
            if e.schema.columns.allSatisfy({ names.contains($0.sourceField) }) { out.insert(t.entity) }
        }
        return out
    }

    /// `in-orders` for `s3://landing/in/` into `orders`: stable across runs of the same command.
    static func defaultName(_ source: String, _ entity: String) -> String {
        let tail = source.split(separator: "/").last.map(String.init) ?? "root"
        return "\(tail)-\(entity)"
    }
}

/// One watcher as a service of `sluice serve` or `sluice watch`: polls until shutdown.
public final class WatchService: Service, Sendable {
    let watcher: Watcher
    let stopping = Atomic<Bool>(false)

    public init(watcher: Watcher) { self.watcher = watcher }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await watcher.run(isStopping: { self.stopping.load(ordering: .relaxed) })
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }
}
