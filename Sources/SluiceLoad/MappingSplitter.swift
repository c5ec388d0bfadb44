public import SluiceCore
import SluiceFormats
import Foundation

/// Splits a JSON file (array, NDJSON or a sequence of objects; `.gz` too) by a
/// ``JSONMapping`` into one NDJSON file per target entity, streaming: one record in memory
/// at a time. Any malformed record fails the whole file, naming its line.
public enum MappingSplitter {
    public struct Part: Sendable, Equatable {
        public var entity: String
        public var path: String
        public var rows: Int
    }

    public static func split(file: String, mapping: JSONMapping, sourceName: String, outDir: String,
                             maxRecordBytes: Int = ReadLimits().maxRecordBytes) throws(SluiceError) -> [Part] {
        var reader: any ByteChunkReader = try FileChunkReader(path: file)
        if file.hasSuffix(".gz") { reader = try GzipChunkReader(reader) }
        let framer = JSONFramer(source: reader, maxRecordBytes: maxRecordBytes, fileName: file)
        do {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create '\(outDir)': \(error.localizedDescription)")
        }
        var outputs: [(path: String, handle: FileHandle, buffer: [UInt8], rows: Int)] = []
        for (i, t) in mapping.targets.enumerated() {
            let path = (outDir as NSString).appendingPathComponent("\(i)-\(t.entity).ndjson")
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw SluiceError(.io, "cannot create", at: SourceLocation(file: path))
            }
            outputs.append((path, h, [], 0))
        }
        defer { for o in outputs { try? o.handle.close() } }  // synchronized explicitly before returning
        func flush(_ i: Int) throws(SluiceError) {
            do { try outputs[i].handle.write(contentsOf: Data(outputs[i].buffer)) } catch {
                throw SluiceError(.io, "write failed: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
            }
            outputs[i].buffer.removeAll(keepingCapacity: true)
        }
        var number: Int64 = 0
        while true {
            switch try framer.next() {
            case .end:
                for i in outputs.indices {
                    try flush(i)
                    do { try outputs[i].handle.synchronize() } catch {
                        throw SluiceError(.io, "sync failed: \(error.localizedDescription)", at: SourceLocation(file: outputs[i].path))
                    }
                }
                return mapping.targets.indices.map { Part(entity: mapping.targets[$0].entity, path: outputs[$0].path, rows: outputs[$0].rows) }
            case .tooLong(let bytes):
                throw SluiceError(.recordTooLong, "a record is longer than \(maxRecordBytes) bytes (\(bytes) read)", at: SourceLocation(file: file, line: framer.line))
            case .record:
                let record: JSONValue
                do {
                    record = try JSONParser.parse(framer.record)
                } catch {
                    throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: file, line: framer.line))
                }
                guard case .object = record else {
                    throw SluiceError(.invalidInput, "a record is not a JSON object", at: SourceLocation(file: file, line: framer.line))
                }
                number += 1
                for (i, rows) in mapping.rows(record, line: number, sourceName: sourceName).enumerated() {
                    for row in rows {
                        row.write(into: &outputs[i].buffer)
                        outputs[i].buffer.append(0x0A)
                        outputs[i].rows += 1
                    }
                    if outputs[i].buffer.count >= 1 << 20 { try flush(i) }
                }
            }
        }
    }
}
