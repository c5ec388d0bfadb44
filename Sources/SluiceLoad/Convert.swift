public import SluiceCore
public import SluiceFormats
public import SluiceConfig
import Foundation


/// Output formats and their options for ``Converter``.
public struct ConvertOptions: Sendable {
    public var format: SourceFormat?
    public var parquet = ParquetWriteOptions()
    public var avroCodec: AvroReader.Codec = .deflate
    public var csv = CSVDialect()
    public var limits = ReadLimits()
    /// NDJSON output: decimals as bare numbers rather than strings (the default keeps them exact).
    public var jsonDecimalsAsNumbers = false
    public init() {}
}

/// What a conversion did, with the time spent reading and writing apart.
public struct ConvertReport: Sendable, Codable {
    public var input: String
    public var output: String
    public var format: String
    public var rows: Int64 = 0
    public var rejected: Int64 = 0
    public var firstRejects: [String] = []
    public var readSeconds = 0.0
    public var writeSeconds = 0.0
    /// Time to flush the output to disk and move it into place (not in ``writeSeconds``).
    public var syncSeconds = 0.0
    public var bytesWritten: Int64 = 0
    public var columns: [String] = []

    enum CodingKeys: String, CodingKey {
        case input, output, format, rows, rejected, columns
        case firstRejects = "first_rejects", readSeconds = "read_seconds", writeSeconds = "write_seconds", syncSeconds = "sync_seconds"
        case bytesWritten = "bytes_written"
    }
}

/// Converts a file from any readable format to CSV, NDJSON, Parquet or Avro, with the
/// schema the input carries or that inference gives it.
public enum Converter {
    public static func writer(_ format: SourceFormat, sink: any ByteSink, schema: TableSchema, options: ConvertOptions) throws(SluiceError) -> any BatchWriter {
        switch format {
        case .parquet: return try ParquetWriter(sink: sink, schema: schema, options: options.parquet)
        case .avro: return try AvroWriter(sink: sink, schema: schema, codec: options.avroCodec)
        case .csv: return try CSVBatchWriter(sink: sink, schema: schema, dialect: options.csv)
        case .ndjson: return NDJSONBatchWriter(sink: sink, schema: schema, decimalsAsStrings: !options.jsonDecimalsAsNumbers)
        case .json: throw SluiceError(.unsupported, "write JSON as ndjson (one object per line)")
        case .text: throw SluiceError(.unsupported, "text is read, not written; convert to csv or ndjson")
        case .delta: throw SluiceError(.unsupported, "Sluice reads Delta tables but does not write them yet; convert to parquet")
        }
    }

    public static func run(input: String, inputFormat: SourceFormat?, output: String, options: ConvertOptions) throws(SluiceError) -> ConvertReport {
        guard let format = options.format ?? SourceFormat.detect(fromName: output) else {
            throw SluiceError(.invalidArgument, "cannot tell the output format from the name; give --to csv, ndjson, parquet or avro", at: SourceLocation(file: output))
        }
        let file = try InputFile.inspect(path: input, format: inputFormat)
        let columns = try file.inferColumns(dialect: options.csv, rows: SchemaSampler.defaultRows, exclude: [], limits: options.limits)
        let schema = TableSchema(columns: columns)
        let reader = try file.reader(spec: ReadSpec(schema: schema, limits: options.limits, fileName: input), dialect: options.csv)
        let sink = try FileSink(path: output)
        let writer = try Self.writer(format, sink: sink, schema: schema, options: options)
        var report = ConvertReport(input: input, output: output, format: format.rawValue, columns: columns.map(\.name))
        let clock = ContinuousClock()
        while true {
            let t0 = clock.now
            guard let decoded = try reader.next() else { report.readSeconds += (clock.now - t0).seconds; break }
            let t1 = clock.now
            report.readSeconds += (t1 - t0).seconds
            report.rejected += Int64(decoded.rejects.count)
            for r in decoded.rejects.prefix(max(0, 5 - report.firstRejects.count)) { report.firstRejects.append("line \(r.line): \(r.message)") }
            try writer.write(decoded.batch)
            report.writeSeconds += (clock.now - t1).seconds
        }
        let t2 = clock.now
        try writer.finish()
        let t3 = clock.now
        report.writeSeconds += (t3 - t2).seconds
        try sink.commit()
        report.syncSeconds = (clock.now - t3).seconds
        report.rows = writer.rowsWritten
        report.bytesWritten = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int64) ?? 0
        return report
    }
}

extension ParquetWriteOptions {
    /// These options with the `parquet:` section of `sluice.yml` laid over them.
    public func applying(_ settings: ParquetSettings) -> ParquetWriteOptions {
        var o = self
        if let c = settings.compat.flatMap(ParquetCompat.init(setting:)) { o.compat = c }
        if let c = settings.compression.flatMap(Parquet.Codec.init(setting:)) { o.compression = c }
        if let n = settings.rowGroupRows { o.rowGroupRows = n }
        return o
    }
}
