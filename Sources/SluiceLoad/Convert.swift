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
    /// 2: the input is parsed on a thread of its own while this one writes (the default,
    /// where there are two cores); 1: both on one thread.
    public var threads = ProcessInfo.processInfo.activeProcessorCount > 1 ? 2 : 1
    /// Threads parsing the input (with `threads` 2): more than one cut a CSV or NDJSON file
    /// at line boundaries and parse its pieces at once, handed on in the file's order.
    /// Default 2 where there are two cores: the Parquet writer keeps up, and on 1M rows the
    /// whole conversion takes 0.68–0.78× the one-thread time (`bench/run.sh convert`); loads stay
    /// at 1, since their sinks set the pace (`--loads`: 0.94–1.07× with two).
    public var parseThreads = ProcessInfo.processInfo.activeProcessorCount > 1 ? 2 : 1
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
    /// The version committed, writing a Delta table.
    public var version: Int64?

    enum CodingKeys: String, CodingKey {
        case input, output, format, rows, rejected, columns, version
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
        let (file, schema) = try open(input, inputFormat: inputFormat, options: options)
        let sink = try FileSink(path: output)
        let writer = try Self.writer(format, sink: sink, schema: schema, options: options)
        var report = ConvertReport(input: input, output: output, format: format.rawValue, columns: schema.columns.map(\.name))
        try copy(file, schema: schema, into: writer, options: options, report: &report)
        let t3 = ContinuousClock.now
        try sink.commit()
        report.syncSeconds = (ContinuousClock.now - t3).seconds
        report.bytesWritten = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int64) ?? 0
        return report
    }

    /// Writes a file's rows into a Delta table at `table` (a folder; created when new) as one
    /// commit: appended, or replacing what the table held.
    public static func runDelta(input: String, inputFormat: SourceFormat?, table: String, mode: DeltaTableWriter.Mode, partitionBy: [String],
                                options: ConvertOptions, engine: String, prepared: ((DeltaPrepared) -> Void)? = nil) throws(SluiceError) -> ConvertReport {
        let (file, schema) = try open(input, inputFormat: inputFormat, options: options)
        let stored = TableSchema(columns: schema.columns.map { var c = $0; c.type = DeltaCommit.storedType(c.type); return c })
        let writer = try DeltaTableWriter(root: table, schema: stored, mode: mode, partitionBy: partitionBy, options: options.parquet, engine: engine)
        writer.onPrepared = prepared
        var report = ConvertReport(input: input, output: table, format: SourceFormat.delta.rawValue, columns: stored.columns.map(\.name))
        try copy(file, schema: stored, into: writer, options: options, report: &report)
        report.version = writer.committedVersion
        report.bytesWritten = writer.written.reduce(0) { $0 + $1.size }
        return report
    }

    /// The input and the schema its rows are read with (its own, or inferred).
    static func open(_ input: String, inputFormat: SourceFormat?, options: ConvertOptions) throws(SluiceError) -> (InputFile, TableSchema) {
        let file = try InputFile.inspect(path: input, format: inputFormat)
        let columns = try file.inferColumns(dialect: options.csv, rows: SchemaSampler.defaultRows, exclude: [], limits: options.limits)
        return (file, TableSchema(columns: columns))
    }

    /// Reads every row of `file` into `writer` and finishes it, timing both sides.
    static func copy(_ file: InputFile, schema: TableSchema, into writer: any BatchWriter, options: ConvertOptions, report: inout ConvertReport) throws(SluiceError) {
        let spec = ReadSpec(schema: schema, limits: options.limits, fileName: report.input)
        let clock = ContinuousClock()
        // With two threads the reader runs ahead by a few batches; `readSeconds` is then the
        // time spent waiting for it.
        let (ahead, reader): (ReadAhead?, any BatchReader)
        if options.threads > 1 {
            (ahead, reader) = try ReadAhead.of(file, spec: spec, dialect: options.csv, parseThreads: options.parseThreads)
        } else {
            (ahead, reader) = (nil, try file.reader(spec: spec, dialect: options.csv))
        }
        defer { ahead?.queue.cancel() }  // a failed write stops the reader at its next batch
        let next: () throws(SluiceError) -> DecodedBatch? = if let ahead {
            { () throws(SluiceError) in try ahead.queue.pop()?.get() }
        } else {
            { () throws(SluiceError) in try reader.next() }
        }
        while true {
            let t0 = clock.now
            guard let decoded = try next() else { report.readSeconds += (clock.now - t0).seconds; break }
            let t1 = clock.now
            report.readSeconds += (t1 - t0).seconds
            report.rejected += Int64(decoded.rejects.count)
            for r in decoded.rejects.prefix(max(0, 5 - report.firstRejects.count)) { report.firstRejects.append("line \(r.line): \(r.message)") }
            try writer.write(decoded.batch)
            report.writeSeconds += (clock.now - t1).seconds
        }
        let t2 = clock.now
        try writer.finish()
        report.writeSeconds += (clock.now - t2).seconds
        report.rows = writer.rowsWritten
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
