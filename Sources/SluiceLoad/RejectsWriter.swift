import SluiceCore
import SluiceFormats
import Foundation

/// Streams rejected rows to a CSV file (the source's fields, then `_line` and `_error`),
/// created on the first reject so that clean loads leave no empty files behind.
final class RejectsWriter {
    let path: String
    let header: [String]
    private var handle: FileHandle?
    private var csv = CSVWriter()
    private(set) var count: Int64 = 0
    /// Whether a `_line` column follows the fields (false: the fields say where the row was).
    let withLine: Bool

    init(path: String, header: [String], withLine: Bool = true) {
        self.path = path
        self.header = header
        self.withLine = withLine
    }

    func write(_ r: RowReject) throws(SluiceError) {
        if handle == nil { try openFile() }
        var fields = r.fields
        if fields.count < header.count { fields += Array(repeating: nil, count: header.count - fields.count) }
        csv.writeRecord(fields + (withLine ? [String(r.line)] : []) + [r.message])
        count += 1
        if csv.output.count >= 64 << 10 { try flush() }
    }

    private func openFile() throws(SluiceError) {
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create folder '\(dir)' for rejects: \(error.localizedDescription)")
        }
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw SluiceError(.io, "cannot create rejects file '\(path)'")
        }
        handle = h
        csv.writeRecord(header + (withLine ? ["_line"] : []) + ["_error"])
    }

    func flush() throws(SluiceError) {
        guard let handle, !csv.output.isEmpty else { return }
        do {
            try handle.write(contentsOf: csv.output)
        } catch {
            throw SluiceError(.io, "cannot write rejects file '\(path)': \(error.localizedDescription)")
        }
        csv.reset()
    }

    func close() throws(SluiceError) {
        try flush()
        try? handle?.close()  // data is flushed above; a failing close has nothing left to lose
        handle = nil
    }
}
