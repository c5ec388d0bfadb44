public import SluiceCore
import SluiceFormats
import Foundation

/// Splits a JSON file (array, NDJSON or a sequence of objects; `.gz` too) by a
/// ``JSONMapping`` into one file per target entity, streaming: one record in memory at a
/// time. Parts are CSV (RFC 4180 with a header, NULL unquoted-empty, nested values as JSON
/// text), which loads several times faster than NDJSON; NDJSON for an entity that declares
/// its own CSV dialect. Any malformed record fails the whole file, naming its line.
public enum MappingSplitter {
    public struct Part: Sendable, Equatable {
        public var entity: String
        public var path: String
        public var rows: Int
        public var format: SourceFormat
    }

    /// `ndjsonFor`: entities whose parts must be NDJSON (they read CSV in another dialect).
    public static func split(file: String, mapping: JSONMapping, sourceName: String, outDir: String, ndjsonFor: Set<String> = [],
                             maxRecordBytes: Int = ReadLimits().maxRecordBytes) throws(SluiceError) -> [Part] {
        var reader: any ByteChunkReader = try FileChunkReader(path: file)
        if file.hasSuffix(".gz") { reader = try GzipChunkReader(reader) }
        // Errors name the file as the user knows it (`sourceName`), not a scratch copy.
        let framer = JSONFramer(source: reader, maxRecordBytes: maxRecordBytes, fileName: sourceName)
        do {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create '\(outDir)': \(error.localizedDescription)")
        }
        var outputs: [(path: String, handle: FileHandle, buffer: [UInt8], rows: Int)] = []
        var csv: [CSVWriter?] = []
        for (i, t) in mapping.targets.enumerated() {
            let asCSV = !ndjsonFor.contains(t.entity)
            let path = (outDir as NSString).appendingPathComponent("\(i)-\(t.entity).\(asCSV ? "csv" : "ndjson")")
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw SluiceError(.io, "cannot create", at: SourceLocation(file: path))
            }
            var writer: CSVWriter? = nil
            if asCSV {
                writer = CSVWriter()
                writer!.writeRecord(t.columns.map(\.name))
            }
            csv.append(writer)
            outputs.append((path, h, [], 0))
        }
        defer { for o in outputs { try? o.handle.close() } }  // synchronized explicitly before returning
        func flush(_ i: Int) throws(SluiceError) {
            if csv[i] != nil {
                outputs[i].buffer += csv[i]!.output
                csv[i]!.reset()
            }
            do { try outputs[i].handle.write(contentsOf: Data(outputs[i].buffer)) } catch {
                throw SluiceError(.io, "write failed: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
            }
            outputs[i].buffer.removeAll(keepingCapacity: true)
        }
        var number: Int64 = 0
        var scratch: [UInt8] = []
        while true {
            switch try framer.next() {
            case .end:
                for i in outputs.indices {
                    try flush(i)
                    do { try outputs[i].handle.synchronize() } catch {
                        throw SluiceError(.io, "sync failed: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
                    }
                }
                return mapping.targets.indices.map {
                    Part(entity: mapping.targets[$0].entity, path: outputs[$0].path, rows: outputs[$0].rows, format: csv[$0] == nil ? .ndjson : .csv)
                }
            case .tooLong(let bytes):
                throw SluiceError(.recordTooLong, "a record is longer than \(maxRecordBytes) bytes (\(bytes) read)", at: SourceLocation(file: sourceName, line: framer.line))
            case .record:
                let record: JSONValue
                do {
                    record = try JSONParser.parse(framer.record)
                } catch {
                    throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: sourceName, line: framer.line))
                }
                guard case .object = record else {
                    throw SluiceError(.invalidInput, "a record is not a JSON object", at: SourceLocation(file: sourceName, line: framer.line))
                }
                number += 1
                for (i, rows) in mapping.rows(record, line: number, sourceName: sourceName).enumerated() {
                    for row in rows {
                        if csv[i] != nil {
                            guard case .object(let members) = row else { continue }
                            for (c, m) in members.enumerated() {
                                if c > 0 { csv[i]!.appendDelimiter() }
                                csv[i]!.writeJSONField(m.value, scratch: &scratch)
                            }
                            csv[i]!.endRecord()
                        } else {
                            row.write(into: &outputs[i].buffer)
                            outputs[i].buffer.append(0x0A)
                        }
                        outputs[i].rows += 1
                    }
                    if outputs[i].buffer.count + (csv[i]?.output.count ?? 0) >= 1 << 20 { try flush(i) }
                }
            }
        }
    }
}
