public import SluiceCore
import SluiceFormats
import Foundation

/// Runs a pipeline's steps over files, streaming: each CSV or JSON file is read a row at a
/// time, transformed, and written to a CSV part the loader then loads (CSV because it
/// loads fastest). CSV fields arrive as text (cast them), JSON fields with their JSON types.
public struct PipelineRunner {
    /// What one file gave.
    public struct FileResult: Sendable, Equatable {
        public var read = 0
        public var kept = 0
        public var dropped = 0
        public var rejected = 0
        /// The first rejects, with their record number and reason.
        public var rejects: [String] = []
        public init() {}
    }

    /// The steps between `enrich` steps (the first runs as rows are read).
    var segments: [RowTransformer] = []
    /// `enrich` step k runs, on batches, between segments k and k+1.
    let enrichSteps: [EnrichSpec]
    /// Per `enrich` step: keys looked up, answers from the cache, fetched, failed.
    public private(set) var figures: [Enricher.Figures]
    /// The part's columns: the pipeline's output fields when known, else the first row's.
    public private(set) var header: [String]?
    /// Rows handed to `enrich` at once.
    public var batchRows = 2_000

    public init(pipeline: Pipeline) throws(SluiceError) {
        var current: [PipelineStep] = []
        var enrich: [EnrichSpec] = []
        for step in pipeline.steps {
            if case .enrich(let spec) = step {
                segments.append(RowTransformer(steps: current))
                enrich.append(spec)
                current = []
            } else {
                current.append(step)
            }
        }
        segments.append(RowTransformer(steps: current))
        enrichSteps = enrich
        figures = enrich.map { _ in Enricher.Figures() }
        do {
            header = try Pipeline.check(pipeline.steps)
        } catch {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name), step \(error.step + 1): \(error.message)")
        }
    }

    /// Reads `file` (named `displayName` in messages), writes the kept rows to `out` as CSV.
    /// `env` serves the `enrich` steps (HTTP, shared cache and rate limit).
    public mutating func run(file: String, displayName: String, out: String, env: (any EnrichEnvironment)? = nil) async throws(SluiceError) -> FileResult {
        if !enrichSteps.isEmpty && env == nil { throw SluiceError(.invalidConfig, "an enrich step needs the control plane") }
        var reader: any ByteChunkReader = try FileChunkReader(path: file)
        if file.hasSuffix(".gz") { reader = try GzipChunkReader(reader) }
        let format = SourceFormat.detect(fromName: file.hasSuffix(".gz") ? String(file.dropLast(3)) : file) ?? .csv
        guard FileManager.default.createFile(atPath: out, contents: nil), let handle = FileHandle(forWritingAtPath: out) else {
            throw SluiceError(.io, "cannot create", at: SourceLocation(file: out))
        }
        defer { try? handle.close() }  // synchronized explicitly below
        var writer = CSVWriter()
        var result = FileResult()
        var wroteHeader = false
        func write(_ r: PipelineRow) throws(SluiceError) {
            if header == nil { header = r.fields }
            if !wroteHeader {
                writer.writeRecord(header!)
                wroteHeader = true
            }
            for (i, f) in header!.enumerated() {
                if i > 0 { writer.appendDelimiter() }
                switch r.values[f] ?? .null {
                case .null: break
                case .text(let s): writer.writeField(s.utf8)
                case let v: writer.writeField(v.text!.utf8)
                }
            }
            writer.endRecord()
            result.kept += 1
            if writer.output.count >= 1 << 20 {
                do { try handle.write(contentsOf: Data(writer.output)) } catch { throw SluiceError(.io, "write failed", at: SourceLocation(file: out)) }
                writer.reset()
            }
        }
        func reject(_ why: String, _ place: String) {
            result.rejected += 1
            if result.rejects.count < 100 { result.rejects.append("\(displayName) \(place): \(why)") }
        }
        /// Runs the rows waiting for `enrich` through the rest of the steps.
        var waiting: [(row: PipelineRow, place: String)] = []
        func flush() async throws(SluiceError) {
            var batch = waiting
            waiting = []
            for (k, spec) in enrichSteps.enumerated() where !batch.isEmpty {
                let (kept, rejects) = try await Enricher(spec: spec, env: env!).enrich(batch.map(\.row), figures: &figures[k])
                let rejected = Dictionary(rejects, uniquingKeysWith: { a, _ in a })
                var next: [(row: PipelineRow, place: String)] = []
                var keptAt = 0
                for (i, item) in batch.enumerated() {
                    if let why = rejected[i] { reject(why, item.place); continue }
                    for outcome in segments[k + 1].run(kept[keptAt]) {
                        switch outcome {
                        case .keep(let r): next.append((r, item.place))
                        case .drop: result.dropped += 1
                        case .reject(let why): reject(why, item.place)
                        }
                    }
                    keptAt += 1
                }
                batch = next
            }
            for item in batch { try write(item.row) }
        }
        func emit(_ row: PipelineRow, _ place: String) async throws(SluiceError) {
            result.read += 1
            for outcome in segments[0].run(row) {
                switch outcome {
                case .drop: result.dropped += 1
                case .reject(let why): reject(why, place)
                case .keep(let r):
                    if enrichSteps.isEmpty {
                        try write(r)
                    } else {
                        waiting.append((r, place))
                        if waiting.count >= batchRows { try await flush() }
                    }
                }
            }
        }
        switch format {
        case .csv:
            let csv = CSVDecoder(source: reader, fileName: displayName)
            var names: [String]? = nil
            while true {
                switch try csv.next() {
                case .end: break
                case .tooLong: throw SluiceError(.recordTooLong, "a record is too long", at: SourceLocation(file: displayName, line: csv.line))
                case .record:
                    let fields = csv.fieldStrings()
                    guard let header = names else { names = fields.map { $0 ?? "" }; continue }
                    var values: [String: EValue] = [:]
                    for (i, n) in header.enumerated() { values[n] = i < fields.count ? fields[i].map(EValue.text) ?? .null : .null }
                    try await emit(PipelineRow(fields: header, values: values), "line \(csv.line)")
                    continue
                }
                break
            }
        case .ndjson, .json:
            let framer = JSONFramer(source: reader, fileName: displayName)
            var number: Int64 = 0
            while true {
                switch try framer.next() {
                case .end: break
                case .tooLong: throw SluiceError(.recordTooLong, "a record is too long", at: SourceLocation(file: displayName, line: framer.line))
                case .record:
                    number += 1
                    let value: JSONValue
                    do { value = try JSONParser.parse(framer.record) } catch {
                        throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: displayName, line: framer.line))
                    }
                    guard case .object(let members) = value else {
                        throw SluiceError(.invalidInput, "a record is not a JSON object", at: SourceLocation(file: displayName, line: framer.line))
                    }
                    var values: [String: EValue] = [:]
                    for m in members { values[m.key] = Self.value(m.value) }
                    try await emit(PipelineRow(fields: members.map(\.key), values: values), "record \(number)")
                    continue
                }
                break
            }
        default:
            throw SluiceError(.unsupported, "pipelines read CSV and JSON files, not \(format.rawValue)", at: SourceLocation(file: displayName))
        }
        try await flush()
        if !wroteHeader, let header { writer.writeRecord(header) }
        do {
            try handle.write(contentsOf: Data(writer.output))
            try handle.synchronize()
        } catch {
            throw SluiceError(.io, "write failed: \(error.localizedDescription)", at: SourceLocation(file: out))
        }
        return result
    }

    /// A JSON value as an expression value: nested arrays and objects as their JSON text.
    static func value(_ v: JSONValue) -> EValue { RowTransformer.value(v) }
}
