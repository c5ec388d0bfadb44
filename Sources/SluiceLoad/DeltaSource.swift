public import SluiceCore
public import SluiceFormats
import Foundation

/// A Delta table in a local folder.
public struct LocalDeltaStorage: DeltaStorage {
    public let root: String

    public init(root: String) { self.root = root }

    public func listLog() throws(SluiceError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: root + "/_delta_log")
        } catch {
            throw SluiceError(.notFound, "\(root) is not a Delta table: it has no _delta_log folder")
        }
    }

    public func read(_ path: String) throws(SluiceError) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: root + "/" + path) else {
            throw SluiceError(.notFound, "cannot read \(path)", at: SourceLocation(file: root + "/" + path))
        }
        return [UInt8](d)
    }

    public func open(_ path: String) throws(SluiceError) -> any RandomAccessSource {
        do {
            return try FileRandomAccess(path: root + "/" + path)
        } catch {
            throw SluiceError(error.code, error.code == .notFound ? "a file the log names is missing: \(path)" : error.message, at: SourceLocation(file: root + "/" + path))
        }
    }
}

/// A table and the one version of it a load reads (fixed when the input is inspected, so
/// the schema inferred and the rows read come from the same snapshot).
public struct DeltaInput: Sendable {
    public let storage: any DeltaStorage
    public let snapshot: DeltaSnapshot
}

/// How a Delta table is named on the command line and in `sluice.yml`: `delta:PATH`, or a
/// folder holding `_delta_log/`, with an optional `@v12` (a version) or
/// `@2024-05-01T00:00:00Z` (the version current then).
public enum DeltaLocation {
    /// The table's root and version, or nil when `text` does not name a Delta table.
    public static func parse(_ text: String) throws(SluiceError) -> (root: String, selector: DeltaVersionSelector)? {
        var path = text
        let explicit = path.hasPrefix("delta:")
        if explicit { path.removeFirst("delta:".count) }
        var selector = DeltaVersionSelector.latest
        if let at = path.lastIndex(of: "@"), let s = try selectorText(String(path[path.index(after: at)...]), explicit: explicit) {
            selector = s
            path = String(path[..<at])
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        guard explicit || isTable(path) else { return nil }
        return (path, selector)
    }

    /// Whether `path` is a folder with a `_delta_log/` inside.
    public static func isTable(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path + "/_delta_log", isDirectory: &dir) && dir.boolValue
    }

    static func selectorText(_ s: String, explicit: Bool) throws(SluiceError) -> DeltaVersionSelector? {
        if s.hasPrefix("v"), let v = Int64(s.dropFirst()), v >= 0 { return .version(v) }
        // `v5..` or `v5..v9`: the rows added after version 5 (through version 9).
        if s.hasPrefix("v"), let dots = s.range(of: ".."), let a = Int64(s[s.index(after: s.startIndex)..<dots.lowerBound]), a >= 0 {
            let rest = s[dots.upperBound...]
            if rest.isEmpty { return .changes(after: a, through: nil) }
            if rest.hasPrefix("v"), let b = Int64(rest.dropFirst()), b >= a { return .changes(after: a, through: b) }
        }
        var copy = s
        let parsed = copy.withUTF8 { Coercion.parseTimestamp(UnsafeRawBufferPointer($0)) }
        if let parsed { return .asOf(milliseconds: parsed.utcMicros / 1000) }
        if explicit { throw SluiceError(.invalidArgument, "'@\(s)' names no version: write @v12 for version 12, @2024-05-01T00:00:00Z for the version current then, or @v12.. for the rows added since version 12") }
        return nil
    }

    /// Opens the table at `text` and reads the snapshot it names.
    public static func open(_ text: String) throws(SluiceError) -> DeltaInput? {
        guard let (root, selector) = try parse(text) else { return nil }
        if ["s3://", "gs://", "gdrive://", "ftp://", "http://", "https://"].contains(where: root.hasPrefix) {
            throw SluiceError(.unsupported, "\(root): a table in an object store is read by sluice load, pipelines and exports (they fetch it first); convert and infer read local folders")
        }
        let storage = LocalDeltaStorage(root: root)
        return DeltaInput(storage: storage, snapshot: try DeltaLog.snapshot(storage, at: selector))
    }
}

extension InputFile {
    /// A Delta table as one input: its size is the sum of its live files'.
    init(delta: DeltaInput) {
        self.init(path: delta.snapshot.root, size: delta.snapshot.files.reduce(0) { $0 + $1.size }, gzip: false, format: .delta)
        self.delta = delta
    }
}
