public import SluiceCore
import SluiceFormats
import Foundation

/// Splits JSON files (array, NDJSON or a sequence of objects; `.gz` too) by a
/// ``JSONMapping`` into one part file per target entity, streaming: one record in memory at
/// a time, read into a reused ``JSONTape`` (no value is built). Several files can go into
/// the same parts (a watch batch); a file that fails leaves the parts as they were before
/// it. Parts are CSV (RFC 4180 with a header, NULL unquoted-empty, nested values as JSON
/// text), which loads several times faster than NDJSON; NDJSON for an entity that declares
/// its own CSV dialect; or Avro records of nullable strings (the same text as the CSV
/// fields, without quoting on the way out or parsing on the way in) for the entities asked.
/// Any malformed record fails its whole file, naming its line.
public final class MappingSplitter {
    public struct Part: Sendable, Equatable {
        public var entity: String
        public var path: String
        public var rows: Int
        public var format: SourceFormat
    }

    /// One part being written: bytes flushed so far, then the pending ones.
    struct Output {
        var path: String
        var handle: FileHandle
        var csv: CSVWriter?
        var avro: AvroTextWriter?
        var ndjson: [UInt8] = []
        var written = 0
        var rows = 0
        var pending: Int { csv?.output.count ?? avro?.pending.count ?? ndjson.count }
        var format: SourceFormat { csv != nil ? .csv : avro != nil ? .avro : .ndjson }
    }

    /// Everything the per-record work touches, in one struct: its methods reach the parts,
    /// the tape and the scratch buffer without the per-access checks a class's properties take.
    struct State {
        let mapping: JSONMapping
        let compiled: JSONMapping.Compiled
        var outputs: [Output] = []
        var tape = JSONTape()
        var scratch: [UInt8] = []
        /// The tokens the current target's paths reach (-1: missing), from the record's root
        /// and from the current element.
        var rootAnswers: [Int] = []
        var elementAnswers: [Int] = []
    }

    let maxRecordBytes: Int
    var state: State
    var closed = false

    /// `ndjsonFor`: entities whose parts must be NDJSON (they read CSV in another dialect).
    /// `avroFor`: entities whose parts are Avro (when their column names are Avro names).
    public init(mapping: JSONMapping, outDir: String, ndjsonFor: Set<String> = [], avroFor: Set<String> = [],
                maxRecordBytes: Int = ReadLimits().maxRecordBytes) throws(SluiceError) {
        self.maxRecordBytes = maxRecordBytes
        var outputs: [Output] = []
        do {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create '\(outDir)': \(error.localizedDescription)")
        }
        for (i, t) in mapping.targets.enumerated() {
            let avro = avroFor.contains(t.entity) ? AvroTextWriter(fieldNames: t.columns.map(\.name)) : nil
            let asCSV = avro == nil && !ndjsonFor.contains(t.entity)
            let path = (outDir as NSString).appendingPathComponent("\(i)-\(t.entity).\(avro != nil ? "avro" : asCSV ? "csv" : "ndjson")")
            guard FileManager.default.createFile(atPath: path, contents: avro.map { Data($0.header) }), let h = FileHandle(forWritingAtPath: path) else {
                throw SluiceError(.io, "cannot create", at: SourceLocation(file: path))
            }
            do { try h.seekToEnd() } catch { throw SluiceError(.io, "cannot write: \(error.localizedDescription)", at: SourceLocation(file: path)) }
            var writer: CSVWriter? = nil
            if asCSV {
                writer = CSVWriter()
                writer!.writeRecord(t.columns.map(\.name))
            }
            outputs.append(Output(path: path, handle: h, csv: writer, avro: avro, written: avro?.header.count ?? 0))
        }
        state = State(mapping: mapping, compiled: mapping.compiled(), outputs: outputs)
    }

    deinit {
        for o in state.outputs { try? o.handle.close() }  // synchronized in finish(); else the parts are scratch
    }

    /// Splits one file into the parts by one mapping; returns the parts (fsynced).
    public static func split(file: String, mapping: JSONMapping, sourceName: String, outDir: String, ndjsonFor: Set<String> = [],
                             avroFor: Set<String> = [], maxRecordBytes: Int = ReadLimits().maxRecordBytes) throws(SluiceError) -> [Part] {
        let splitter = try MappingSplitter(mapping: mapping, outDir: outDir, ndjsonFor: ndjsonFor, avroFor: avroFor, maxRecordBytes: maxRecordBytes)
        try splitter.add(file: file, sourceName: sourceName)
        return try splitter.finish()
    }

    /// Adds one file's rows to the parts. On any error the parts are cut back to where they
    /// were before this file, so the other files of a batch still load. `sourceName` is the
    /// file as the user knows it (errors and `$source` name it, not a scratch copy).
    public func add(file: String, sourceName: String) throws(SluiceError) {
        guard !closed else { throw SluiceError(.aborted, "the parts are already finished") }
        // Avro parts can only be cut between blocks: each file starts a new one.
        for i in state.outputs.indices where state.outputs[i].avro != nil { try state.flush(i) }
        let marks = state.outputs.map { (bytes: $0.written + $0.pending, rows: $0.rows) }
        do {
            var reader: any ByteChunkReader = try FileChunkReader(path: file)
            if file.hasSuffix(".gz") { reader = try GzipChunkReader(reader) }
            let framer = JSONFramer(source: reader, maxRecordBytes: maxRecordBytes, fileName: sourceName)
            try state.addRecords(framer, maxRecordBytes: maxRecordBytes, sourceName: sourceName)
        } catch {
            try state.cut(to: marks)
            throw error
        }
    }

    /// Flushes and fsyncs the parts; returns them in target order.
    public func finish() throws(SluiceError) -> [Part] {
        for i in state.outputs.indices {
            try state.flush(i)
            do { try state.outputs[i].handle.synchronize() } catch {
                throw SluiceError(.io, "sync failed: \(error.localizedDescription)", at: SourceLocation(file: state.outputs[i].path))
            }
        }
        closed = true
        return state.mapping.targets.indices.map {
            Part(entity: state.mapping.targets[$0].entity, path: state.outputs[$0].path, rows: state.outputs[$0].rows,
                 format: state.outputs[$0].format)
        }
    }
}

extension MappingSplitter.State {
    mutating func addRecords(_ framer: JSONFramer, maxRecordBytes: Int, sourceName: String) throws(SluiceError) {
        let source = Array(sourceName.utf8)
        var number: Int64 = 0
        while true {
            switch try framer.next() {
            case .end:
                return
            case .tooLong(let bytes):
                throw SluiceError(.recordTooLong, "a record is longer than \(maxRecordBytes) bytes (\(bytes) read)", at: SourceLocation(file: sourceName, line: framer.line))
            case .record:
                do {
                    try tape.parse(framer.record)
                } catch {
                    throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: sourceName, line: framer.line))
                }
                guard tape.kind(0) == .object else {
                    throw SluiceError(.invalidInput, "a record is not a JSON object", at: SourceLocation(file: sourceName, line: framer.line))
                }
                number += 1
                let line = Array(String(number).utf8)
                for i in compiled.targets.indices {
                    compiled.targets[i].rootPaths.resolve(tape, from: 0, into: &rootAnswers, scratch: &scratch)
                    guard let path = compiled.targets[i].explode else {
                        write(i, 0, source: source, line: line)
                        continue
                    }
                    // One row per element of the exploded array; none when it is missing or not an array.
                    guard let a = tape.find(path, from: 0), tape.kind(a) == .array else { continue }
                    var e = a + 1
                    let end = tape.tokens[a].next
                    while e < end {
                        write(i, e, source: source, line: line)
                        e = tape.tokens[e].next
                    }
                }
                for i in outputs.indices where outputs[i].pending >= 1 << 20 { try flush(i) }
            }
        }
    }

    /// One row of target `i` made from `element` (a token of the current record).
    mutating func write(_ i: Int, _ element: Int, source: [UInt8], line: [UInt8]) {
        compiled.targets[i].elementPaths.resolve(tape, from: element, into: &elementAnswers, scratch: &scratch)
        let columns = compiled.targets[i].kinds.count
        if outputs[i].csv != nil {
            for c in 0..<columns {
                if c > 0 { outputs[i].csv!.appendDelimiter() }
                switch compiled.targets[i].kinds[c] {
                case .element: outputs[i].csv!.writeJSONToken(tape, token(elementAnswers[compiled.targets[i].answer[c]]), scratch: &scratch)
                case .root: outputs[i].csv!.writeJSONToken(tape, token(rootAnswers[compiled.targets[i].answer[c]]), scratch: &scratch)
                case .sourceName: source.withUnsafeBytes { outputs[i].csv!.writeField(bytes: $0) }
                case .line: line.withUnsafeBytes { outputs[i].csv!.writeField(bytes: $0) }
                }
            }
            outputs[i].csv!.endRecord()
        } else if outputs[i].avro != nil {
            for c in 0..<columns {
                switch compiled.targets[i].kinds[c] {
                case .element: appendAvro(i, token(elementAnswers[compiled.targets[i].answer[c]]))
                case .root: appendAvro(i, token(rootAnswers[compiled.targets[i].answer[c]]))
                case .sourceName: source.withUnsafeBytes { outputs[i].avro!.append($0) }
                case .line: line.withUnsafeBytes { outputs[i].avro!.append($0) }
                }
            }
            outputs[i].avro!.endRecord()
        } else {
            outputs[i].ndjson.append(UInt8(ascii: "{"))
            for c in 0..<columns {
                if c > 0 { outputs[i].ndjson.append(UInt8(ascii: ",")) }
                JSONValue.writeString(bytes: mapping.targets[i].columns[c].name.utf8, into: &outputs[i].ndjson)
                outputs[i].ndjson.append(UInt8(ascii: ":"))
                let t: Int?
                switch compiled.targets[i].kinds[c] {
                case .element: t = token(elementAnswers[compiled.targets[i].answer[c]])
                case .root: t = token(rootAnswers[compiled.targets[i].answer[c]])
                case .sourceName:
                    JSONValue.writeString(bytes: source, into: &outputs[i].ndjson)
                    continue
                case .line:
                    outputs[i].ndjson.append(contentsOf: line)
                    continue
                }
                if let t { tape.writeCompact(t, into: &outputs[i].ndjson) } else { outputs[i].ndjson.append(contentsOf: "null".utf8) }
            }
            outputs[i].ndjson.append(contentsOf: "}\n".utf8)
        }
        outputs[i].rows += 1
    }

    @inline(__always) func token(_ answer: Int) -> Int? { answer < 0 ? nil : answer }

    /// A value as the text ``CSVWriter/writeJSONToken(_:_:scratch:)`` writes for it: null
    /// and missing as NULL, strings unescaped, numbers and booleans as written, arrays and
    /// objects as compact JSON.
    mutating func appendAvro(_ i: Int, _ t: Int?) {
        guard let t else {
            outputs[i].avro!.appendNull()
            return
        }
        switch tape.kind(t) {
        case .null: outputs[i].avro!.appendNull()
        case .bool, .number: outputs[i].avro!.append(tape.raw(t))
        case .string: tape.text(t, scratch: &scratch) { outputs[i].avro!.append($0) }
        case .array, .object:
            scratch.removeAll(keepingCapacity: true)
            tape.writeCompact(t, into: &scratch)
            scratch.withUnsafeBytes { outputs[i].avro!.append($0) }
        }
    }

    mutating func flush(_ i: Int) throws(SluiceError) {
        do {
            if outputs[i].csv != nil {
                try outputs[i].csv!.output.withUnsafeBytes { try outputs[i].handle.write(contentsOf: $0) }
                outputs[i].written += outputs[i].csv!.output.count
                outputs[i].csv!.reset()
            } else if outputs[i].avro != nil {
                let block = outputs[i].avro!.flush()
                try block.withUnsafeBytes { try outputs[i].handle.write(contentsOf: $0) }
                outputs[i].written += block.count
            } else {
                try outputs[i].ndjson.withUnsafeBytes { try outputs[i].handle.write(contentsOf: $0) }
                outputs[i].written += outputs[i].ndjson.count
                outputs[i].ndjson.removeAll(keepingCapacity: true)
            }
        } catch {
            throw SluiceError(.io, "write failed: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
        }
    }

    /// Cuts every part back to `marks` (bytes, rows): pending bytes are dropped, and bytes
    /// already flushed past the mark are truncated away.
    mutating func cut(to marks: [(bytes: Int, rows: Int)]) throws(SluiceError) {
        for i in outputs.indices {
            let mark = marks[i].bytes
            outputs[i].rows = marks[i].rows
            if mark >= outputs[i].written {
                let keep = mark - outputs[i].written
                if outputs[i].csv != nil {
                    outputs[i].csv!.truncate(to: keep)
                } else if outputs[i].avro != nil {
                    outputs[i].avro!.dropPending()  // marks are taken between blocks: nothing was pending
                } else {
                    outputs[i].ndjson.removeSubrange(keep...)
                }
                continue
            }
            outputs[i].csv?.reset()
            outputs[i].avro?.dropPending()
            outputs[i].ndjson.removeAll(keepingCapacity: true)
            do {
                try outputs[i].handle.truncate(atOffset: UInt64(mark))
                try outputs[i].handle.seekToEnd()
            } catch {
                throw SluiceError(.io, "cannot truncate: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
            }
            outputs[i].written = mark
        }
    }
}
