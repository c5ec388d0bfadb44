public import SluiceCore

/// An open Parquet file: its validated footer, its schema, and access to each column chunk.
/// Nothing is read beyond the footer until a column chunk is asked for.
public final class ParquetFile {
    public let source: any RandomAccessSource
    public let metadata: Parquet.FileMetaData
    public let schema: ParquetSchema
    public let fileName: String?
    let dataEnd: Int64

    public convenience init(source: any RandomAccessSource, fileName: String? = nil) throws(SluiceError) {
        do throws(SluiceError) {
            try self.init(checking: source, fileName: fileName)
        } catch {
            throw fileName.map { error.inFile($0) } ?? error
        }
    }

    private init(checking source: any RandomAccessSource, fileName: String?) throws(SluiceError) {
        self.source = source
        self.fileName = fileName
        let size = source.size
        let at = SourceLocation(file: fileName)
        guard size >= 12 else { throw SluiceError(.malformedFile, "not a Parquet file: only \(size) bytes", at: at) }
        let head = try source.read(at: 0, count: 4)
        let tail = try source.read(at: size - 8, count: 8)
        guard head == Parquet.magic else { throw SluiceError(.malformedFile, "not a Parquet file: it does not start with PAR1", at: at) }
        guard Array(tail[4...]) == Parquet.magic else {
            if Array(tail[4...]) == Array("PARE".utf8) { throw SluiceError(.unsupported, "the Parquet file is encrypted", at: at) }
            throw SluiceError(.malformedFile, "not a Parquet file, or truncated: it does not end with PAR1", at: at)
        }
        let footerLength = Int64(UInt32(tail[0]) | UInt32(tail[1]) << 8 | UInt32(tail[2]) << 16 | UInt32(tail[3]) << 24)
        guard footerLength > 0, footerLength <= size - 12 else {
            throw SluiceError(.malformedFile, "Parquet footer length \(footerLength) does not fit a \(size)-byte file", at: at)
        }
        dataEnd = size - 8 - footerLength
        let footer = try source.read(at: dataEnd, count: Int(footerLength))
        do throws(SluiceError) {
            metadata = try footer.withBytes { (b) throws(SluiceError) in try Parquet.fileMetaData(b) }
            schema = try ParquetSchema(metadata.schema, fileName: fileName)
        } catch {
            throw fileName.map { error.inFile($0) } ?? error
        }
        guard metadata.numRows >= 0 else { throw SluiceError(.malformedFile, "Parquet footer says \(metadata.numRows) rows", at: at) }
        var total: Int64 = 0
        for (g, group) in metadata.rowGroups.enumerated() {
            guard group.numRows >= 0 else { throw SluiceError(.malformedFile, "row group \(g) has \(group.numRows) rows", at: at) }
            guard group.columns.count == schema.leaves.count else {
                throw SluiceError(.malformedFile, "row group \(g) has \(group.columns.count) column chunks for \(schema.leaves.count) columns", at: at)
            }
            total = total &+ group.numRows
        }
        guard total == metadata.numRows else {
            throw SluiceError(.malformedFile, "row groups hold \(total) rows but the footer says \(metadata.numRows)", at: at)
        }
    }

    public var rowGroupCount: Int { metadata.rowGroups.count }

    /// The bytes of one column chunk (all its pages), after checking its range.
    public func columnChunk(rowGroup g: Int, leaf i: Int) throws(SluiceError) -> (bytes: [UInt8], meta: Parquet.ColumnMetaData) {
        let at = SourceLocation(file: fileName)
        let leaf = schema.leaves[i]
        let name = leaf.path.joined(separator: ".")
        let chunk = metadata.rowGroups[g].columns[i]
        guard chunk.filePath == nil else { throw SluiceError(.unsupported, "column '\(name)' lives in another file (\(chunk.filePath!))", at: at) }
        guard let meta = chunk.meta else { throw SluiceError(.malformedFile, "column '\(name)' of row group \(g) has no metadata", at: at) }
        guard meta.type == leaf.element.type else {
            throw SluiceError(.malformedFile, "column '\(name)' of row group \(g) is \(meta.type), the schema says \(leaf.element.type.map { "\($0)" } ?? "nothing")", at: at)
        }
        var start = meta.dataPageOffset
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = d }
        let length = meta.totalCompressedSize
        guard start >= 4, length >= 0, start <= dataEnd, length <= dataEnd - start else {
            throw SluiceError(.malformedFile, "column '\(name)' of row group \(g) spans bytes \(start)..<\(start &+ length), outside the file's data", at: at)
        }
        guard meta.numValues >= 0 else { throw SluiceError(.malformedFile, "column '\(name)' has \(meta.numValues) values", at: at) }
        return (try source.read(at: start, count: Int(length)), meta)
    }
}
