//! The data dictionary of implicit VR (PS3.6 §6): the VR of the public attributes an implicit VR file is
//! likely to hold, for the whole-data-set reader, which finds no VR in such a file. Invariants: the
//! table is sorted by tag with no tag twice, and each entry is a VR of PS3.5 §6.2 or one of the three
//! ambiguous ones ("US or SS", "OB or OW", "US or OW") whose choice is left to the reader; a tag the
//! table does not hold has no VR here. It imports `tags`, and `element` in its tests only.

use super::tags::Tag;

/// The dictionary VR of a public attribute as PS3.6 writes it: two letters, or one of the ambiguous
/// "US or SS", "OB or OW" and "US or OW". `None` for an attribute the table does not hold.
pub(crate) fn lookup(tag: Tag) -> Option<&'static str> {
    // The Overlay groups 6000-601E repeat one set of attributes (PS3.5 §7.6).
    let group = if tag.group & 0xFF00 == 0x6000 { 0x6000 } else { tag.group };
    let key = (u32::from(group) << 16) | u32::from(tag.element);
    let index = DICTIONARY.binary_search_by_key(&key, |&(tag, _)| tag).ok()?;
    DICTIONARY.get(index).map(|&(_, vr)| vr)
}

/// The VR of the public attributes an implicit VR file is likely to hold (PS3.6 §6), sorted by tag:
/// every public attribute of the sample files, the File Meta Information (for writers that encode it
/// in implicit VR), the Patient, Study, Series, Equipment, Image, Image Pixel, Multi-frame, CT, MR, SOP
/// Common and common code sequence and SR attributes. Group lengths, private and unknown tags are
/// handled by the whole-data-set reader (`dataset::implicit_vr`). "US or SS" depends on Pixel
/// Representation; "OB or OW" and "US or OW" are OW in implicit VR.
#[rustfmt::skip]
static DICTIONARY: [(u32, &str); 347] = [
    (0x0002_0001, "OB"), // FileMetaInformationVersion
    (0x0002_0002, "UI"), // MediaStorageSOPClassUID
    (0x0002_0003, "UI"), // MediaStorageSOPInstanceUID
    (0x0002_0010, "UI"), // TransferSyntaxUID
    (0x0002_0012, "UI"), // ImplementationClassUID
    (0x0002_0013, "SH"), // ImplementationVersionName
    (0x0002_0016, "AE"), // SourceApplicationEntityTitle
    (0x0002_0100, "UI"), // PrivateInformationCreatorUID
    (0x0002_0102, "OB"), // PrivateInformation
    (0x0008_0005, "CS"), // SpecificCharacterSet
    (0x0008_0008, "CS"), // ImageType
    (0x0008_0012, "DA"), // InstanceCreationDate
    (0x0008_0013, "TM"), // InstanceCreationTime
    (0x0008_0014, "UI"), // InstanceCreatorUID
    (0x0008_0015, "DT"), // InstanceCoercionDateTime
    (0x0008_0016, "UI"), // SOPClassUID
    (0x0008_0018, "UI"), // SOPInstanceUID
    (0x0008_0020, "DA"), // StudyDate
    (0x0008_0021, "DA"), // SeriesDate
    (0x0008_0022, "DA"), // AcquisitionDate
    (0x0008_0023, "DA"), // ContentDate
    (0x0008_002A, "DT"), // AcquisitionDateTime
    (0x0008_0030, "TM"), // StudyTime
    (0x0008_0031, "TM"), // SeriesTime
    (0x0008_0032, "TM"), // AcquisitionTime
    (0x0008_0033, "TM"), // ContentTime
    (0x0008_0050, "SH"), // AccessionNumber
    (0x0008_0051, "SQ"), // IssuerOfAccessionNumberSequence
    (0x0008_0052, "CS"), // QueryRetrieveLevel
    (0x0008_0054, "AE"), // RetrieveAETitle
    (0x0008_0056, "CS"), // InstanceAvailability
    (0x0008_0060, "CS"), // Modality
    (0x0008_0061, "CS"), // ModalitiesInStudy
    (0x0008_0064, "CS"), // ConversionType
    (0x0008_0068, "CS"), // PresentationIntentType
    (0x0008_0070, "LO"), // Manufacturer
    (0x0008_0080, "LO"), // InstitutionName
    (0x0008_0081, "ST"), // InstitutionAddress
    (0x0008_0090, "PN"), // ReferringPhysicianName
    (0x0008_0100, "SH"), // CodeValue
    (0x0008_0102, "SH"), // CodingSchemeDesignator
    (0x0008_0103, "SH"), // CodingSchemeVersion
    (0x0008_0104, "LO"), // CodeMeaning
    (0x0008_0105, "CS"), // MappingResource
    (0x0008_0106, "DT"), // ContextGroupVersion
    (0x0008_010F, "CS"), // ContextIdentifier
    (0x0008_0119, "UC"), // LongCodeValue
    (0x0008_0120, "UR"), // URNCodeValue
    (0x0008_0201, "SH"), // TimezoneOffsetFromUTC
    (0x0008_1010, "SH"), // StationName
    (0x0008_1030, "LO"), // StudyDescription
    (0x0008_1032, "SQ"), // ProcedureCodeSequence
    (0x0008_103E, "LO"), // SeriesDescription
    (0x0008_1040, "LO"), // InstitutionalDepartmentName
    (0x0008_1048, "PN"), // PhysiciansOfRecord
    (0x0008_1050, "PN"), // PerformingPhysicianName
    (0x0008_1060, "PN"), // NameOfPhysiciansReadingStudy
    (0x0008_1070, "PN"), // OperatorsName
    (0x0008_1080, "LO"), // AdmittingDiagnosesDescription
    (0x0008_1090, "LO"), // ManufacturerModelName
    (0x0008_1110, "SQ"), // ReferencedStudySequence
    (0x0008_1111, "SQ"), // ReferencedPerformedProcedureStepSequence
    (0x0008_1115, "SQ"), // ReferencedSeriesSequence
    (0x0008_1120, "SQ"), // ReferencedPatientSequence
    (0x0008_1140, "SQ"), // ReferencedImageSequence
    (0x0008_114A, "SQ"), // ReferencedInstanceSequence
    (0x0008_1150, "UI"), // ReferencedSOPClassUID
    (0x0008_1155, "UI"), // ReferencedSOPInstanceUID
    (0x0008_1160, "IS"), // ReferencedFrameNumber
    (0x0008_1190, "UR"), // RetrieveURL
    (0x0008_2111, "ST"), // DerivationDescription
    (0x0008_2112, "SQ"), // SourceImageSequence
    (0x0008_2144, "IS"), // RecommendedDisplayFrameRate
    (0x0008_2218, "SQ"), // AnatomicRegionSequence
    (0x0008_3010, "UI"), // IrradiationEventUID
    (0x0008_9007, "CS"), // FrameType
    (0x0008_9205, "CS"), // PixelPresentation
    (0x0008_9206, "CS"), // VolumetricProperties
    (0x0008_9207, "CS"), // VolumeBasedCalculationTechnique
    (0x0008_9215, "SQ"), // DerivationCodeSequence
    (0x0010_0010, "PN"), // PatientName
    (0x0010_0020, "LO"), // PatientID
    (0x0010_0021, "LO"), // IssuerOfPatientID
    (0x0010_0022, "CS"), // TypeOfPatientID
    (0x0010_0024, "SQ"), // IssuerOfPatientIDQualifiersSequence
    (0x0010_0030, "DA"), // PatientBirthDate
    (0x0010_0032, "TM"), // PatientBirthTime
    (0x0010_0040, "CS"), // PatientSex
    (0x0010_1001, "PN"), // OtherPatientNames
    (0x0010_1002, "SQ"), // OtherPatientIDsSequence
    (0x0010_1010, "AS"), // PatientAge
    (0x0010_1020, "DS"), // PatientSize
    (0x0010_1030, "DS"), // PatientWeight
    (0x0010_1040, "LO"), // PatientAddress
    (0x0010_2000, "LO"), // MedicalAlerts
    (0x0010_2110, "LO"), // Allergies
    (0x0010_2160, "SH"), // EthnicGroup
    (0x0010_2180, "SH"), // Occupation
    (0x0010_21A0, "CS"), // SmokingStatus
    (0x0010_21B0, "LT"), // AdditionalPatientHistory
    (0x0010_21C0, "US"), // PregnancyStatus
    (0x0010_2201, "LO"), // PatientSpeciesDescription
    (0x0010_2292, "LO"), // PatientBreedDescription
    (0x0010_2297, "PN"), // ResponsiblePerson
    (0x0010_4000, "LT"), // PatientComments
    (0x0012_0062, "CS"), // PatientIdentityRemoved
    (0x0012_0063, "LO"), // DeidentificationMethod
    (0x0018_0010, "LO"), // ContrastBolusAgent
    (0x0018_0015, "CS"), // BodyPartExamined
    (0x0018_0020, "CS"), // ScanningSequence
    (0x0018_0021, "CS"), // SequenceVariant
    (0x0018_0022, "CS"), // ScanOptions
    (0x0018_0023, "CS"), // MRAcquisitionType
    (0x0018_0024, "SH"), // SequenceName
    (0x0018_0025, "CS"), // AngioFlag
    (0x0018_0040, "IS"), // CineRate
    (0x0018_0050, "DS"), // SliceThickness
    (0x0018_0060, "DS"), // KVP
    (0x0018_0080, "DS"), // RepetitionTime
    (0x0018_0081, "DS"), // EchoTime
    (0x0018_0082, "DS"), // InversionTime
    (0x0018_0083, "DS"), // NumberOfAverages
    (0x0018_0084, "DS"), // ImagingFrequency
    (0x0018_0085, "SH"), // ImagedNucleus
    (0x0018_0086, "IS"), // EchoNumbers
    (0x0018_0087, "DS"), // MagneticFieldStrength
    (0x0018_0088, "DS"), // SpacingBetweenSlices
    (0x0018_0089, "IS"), // NumberOfPhaseEncodingSteps
    (0x0018_0090, "DS"), // DataCollectionDiameter
    (0x0018_0091, "IS"), // EchoTrainLength
    (0x0018_0093, "DS"), // PercentSampling
    (0x0018_0094, "DS"), // PercentPhaseFieldOfView
    (0x0018_0095, "DS"), // PixelBandwidth
    (0x0018_1000, "LO"), // DeviceSerialNumber
    (0x0018_1002, "UI"), // DeviceUID
    (0x0018_1008, "LO"), // GantryID
    (0x0018_1020, "LO"), // SoftwareVersions
    (0x0018_1030, "LO"), // ProtocolName
    (0x0018_1040, "LO"), // ContrastBolusRoute
    (0x0018_1041, "DS"), // ContrastBolusVolume
    (0x0018_1042, "TM"), // ContrastBolusStartTime
    (0x0018_1050, "DS"), // SpatialResolution
    (0x0018_1060, "DS"), // TriggerTime
    (0x0018_1063, "DS"), // FrameTime
    (0x0018_1065, "DS"), // FrameTimeVector
    (0x0018_1066, "DS"), // FrameDelay
    (0x0018_1088, "IS"), // HeartRate
    (0x0018_1100, "DS"), // ReconstructionDiameter
    (0x0018_1110, "DS"), // DistanceSourceToDetector
    (0x0018_1111, "DS"), // DistanceSourceToPatient
    (0x0018_1120, "DS"), // GantryDetectorTilt
    (0x0018_1130, "DS"), // TableHeight
    (0x0018_1140, "CS"), // RotationDirection
    (0x0018_1150, "IS"), // ExposureTime
    (0x0018_1151, "IS"), // XRayTubeCurrent
    (0x0018_1152, "IS"), // Exposure
    (0x0018_1160, "SH"), // FilterType
    (0x0018_1164, "DS"), // ImagerPixelSpacing
    (0x0018_1170, "IS"), // GeneratorPower
    (0x0018_1190, "DS"), // FocalSpots
    (0x0018_1200, "DA"), // DateOfLastCalibration
    (0x0018_1201, "TM"), // TimeOfLastCalibration
    (0x0018_1210, "SH"), // ConvolutionKernel
    (0x0018_1242, "IS"), // ActualFrameDuration
    (0x0018_1250, "SH"), // ReceiveCoilName
    (0x0018_1251, "SH"), // TransmitCoilName
    (0x0018_1310, "US"), // AcquisitionMatrix
    (0x0018_1312, "CS"), // InPlanePhaseEncodingDirection
    (0x0018_1314, "DS"), // FlipAngle
    (0x0018_1316, "DS"), // SAR
    (0x0018_1318, "DS"), // dBdt
    (0x0018_5100, "CS"), // PatientPosition
    (0x0018_5101, "CS"), // ViewPosition
    (0x0018_9073, "FD"), // AcquisitionDuration
    (0x0018_9074, "DT"), // FrameAcquisitionDateTime
    (0x0018_9151, "DT"), // FrameReferenceDateTime
    (0x0018_9220, "FD"), // FrameAcquisitionDuration
    (0x0018_9226, "SQ"), // MRImageFrameTypeSequence
    (0x0018_9305, "FD"), // RevolutionTime
    (0x0018_9306, "FD"), // SingleCollimationWidth
    (0x0018_9307, "FD"), // TotalCollimationWidth
    (0x0018_9309, "FD"), // TableSpeed
    (0x0018_9310, "FD"), // TableFeedPerRotation
    (0x0018_9311, "FD"), // SpiralPitchFactor
    (0x0018_9313, "FD"), // DataCollectionCenterPatient
    (0x0018_9315, "CS"), // ReconstructionAlgorithm
    (0x0018_9318, "FD"), // ReconstructionTargetCenterPatient
    (0x0018_9320, "SH"), // ImageFilter
    (0x0018_9323, "CS"), // ExposureModulationType
    (0x0018_9324, "FD"), // EstimatedDoseSaving
    (0x0018_9329, "SQ"), // CTImageFrameTypeSequence
    (0x0018_9345, "FD"), // CTDIvol
    (0x0018_A001, "SQ"), // ContributingEquipmentSequence
    (0x0020_000D, "UI"), // StudyInstanceUID
    (0x0020_000E, "UI"), // SeriesInstanceUID
    (0x0020_0010, "SH"), // StudyID
    (0x0020_0011, "IS"), // SeriesNumber
    (0x0020_0012, "IS"), // AcquisitionNumber
    (0x0020_0013, "IS"), // InstanceNumber
    (0x0020_0020, "CS"), // PatientOrientation
    (0x0020_0032, "DS"), // ImagePositionPatient
    (0x0020_0037, "DS"), // ImageOrientationPatient
    (0x0020_0052, "UI"), // FrameOfReferenceUID
    (0x0020_0060, "CS"), // Laterality
    (0x0020_0062, "CS"), // ImageLaterality
    (0x0020_0100, "IS"), // TemporalPositionIdentifier
    (0x0020_0105, "IS"), // NumberOfTemporalPositions
    (0x0020_0200, "UI"), // SynchronizationFrameOfReferenceUID
    (0x0020_1002, "IS"), // ImagesInAcquisition
    (0x0020_1040, "LO"), // PositionReferenceIndicator
    (0x0020_1041, "DS"), // SliceLocation
    (0x0020_1206, "IS"), // NumberOfStudyRelatedSeries
    (0x0020_1208, "IS"), // NumberOfStudyRelatedInstances
    (0x0020_1209, "IS"), // NumberOfSeriesRelatedInstances
    (0x0020_4000, "LT"), // ImageComments
    (0x0020_9056, "SH"), // StackID
    (0x0020_9057, "UL"), // InStackPositionNumber
    (0x0020_9111, "SQ"), // FrameContentSequence
    (0x0020_9113, "SQ"), // PlanePositionSequence
    (0x0020_9116, "SQ"), // PlaneOrientationSequence
    (0x0020_9128, "UL"), // TemporalPositionIndex
    (0x0020_9156, "US"), // FrameAcquisitionNumber
    (0x0020_9157, "UL"), // DimensionIndexValues
    (0x0020_9161, "UI"), // ConcatenationUID
    (0x0020_9162, "US"), // InConcatenationNumber
    (0x0020_9163, "US"), // InConcatenationTotalNumber
    (0x0020_9164, "UI"), // DimensionOrganizationUID
    (0x0020_9165, "AT"), // DimensionIndexPointer
    (0x0020_9167, "AT"), // FunctionalGroupPointer
    (0x0020_9221, "SQ"), // DimensionOrganizationSequence
    (0x0020_9222, "SQ"), // DimensionIndexSequence
    (0x0020_9421, "LO"), // DimensionDescriptionLabel
    (0x0028_0002, "US"), // SamplesPerPixel
    (0x0028_0004, "CS"), // PhotometricInterpretation
    (0x0028_0006, "US"), // PlanarConfiguration
    (0x0028_0008, "IS"), // NumberOfFrames
    (0x0028_0009, "AT"), // FrameIncrementPointer
    (0x0028_000A, "AT"), // FrameDimensionPointer
    (0x0028_0010, "US"), // Rows
    (0x0028_0011, "US"), // Columns
    (0x0028_0030, "DS"), // PixelSpacing
    (0x0028_0034, "IS"), // PixelAspectRatio
    (0x0028_0100, "US"), // BitsAllocated
    (0x0028_0101, "US"), // BitsStored
    (0x0028_0102, "US"), // HighBit
    (0x0028_0103, "US"), // PixelRepresentation
    (0x0028_0106, "US or SS"), // SmallestImagePixelValue
    (0x0028_0107, "US or SS"), // LargestImagePixelValue
    (0x0028_0120, "US or SS"), // PixelPaddingValue
    (0x0028_0121, "US or SS"), // PixelPaddingRangeLimit
    (0x0028_0300, "CS"), // QualityControlImage
    (0x0028_0301, "CS"), // BurnedInAnnotation
    (0x0028_0302, "CS"), // RecognizableVisualFeatures
    (0x0028_0A02, "CS"), // PixelSpacingCalibrationType
    (0x0028_1040, "CS"), // PixelIntensityRelationship
    (0x0028_1041, "SS"), // PixelIntensityRelationshipSign
    (0x0028_1050, "DS"), // WindowCenter
    (0x0028_1051, "DS"), // WindowWidth
    (0x0028_1052, "DS"), // RescaleIntercept
    (0x0028_1053, "DS"), // RescaleSlope
    (0x0028_1054, "LO"), // RescaleType
    (0x0028_1055, "LO"), // WindowCenterWidthExplanation
    (0x0028_1056, "CS"), // VOILUTFunction
    (0x0028_1101, "US or SS"), // RedPaletteColorLookupTableDescriptor
    (0x0028_1102, "US or SS"), // GreenPaletteColorLookupTableDescriptor
    (0x0028_1103, "US or SS"), // BluePaletteColorLookupTableDescriptor
    (0x0028_1201, "OW"), // RedPaletteColorLookupTableData
    (0x0028_1202, "OW"), // GreenPaletteColorLookupTableData
    (0x0028_1203, "OW"), // BluePaletteColorLookupTableData
    (0x0028_2000, "OB"), // ICCProfile
    (0x0028_2002, "CS"), // ColorSpace
    (0x0028_2110, "CS"), // LossyImageCompression
    (0x0028_2112, "DS"), // LossyImageCompressionRatio
    (0x0028_2114, "CS"), // LossyImageCompressionMethod
    (0x0028_3000, "SQ"), // ModalityLUTSequence
    (0x0028_3002, "US or SS"), // LUTDescriptor
    (0x0028_3003, "LO"), // LUTExplanation
    (0x0028_3004, "LO"), // ModalityLUTType
    (0x0028_3006, "US or OW"), // LUTData
    (0x0028_3010, "SQ"), // VOILUTSequence
    (0x0028_7FE0, "UR"), // PixelDataProviderURL
    (0x0028_9110, "SQ"), // PixelMeasuresSequence
    (0x0028_9132, "SQ"), // FrameVOILUTSequence
    (0x0028_9145, "SQ"), // PixelValueTransformationSequence
    (0x0032_1032, "PN"), // RequestingPhysician
    (0x0032_1060, "LO"), // RequestedProcedureDescription
    (0x0032_1064, "SQ"), // RequestedProcedureCodeSequence
    (0x0040_0007, "LO"), // ScheduledProcedureStepDescription
    (0x0040_0008, "SQ"), // ScheduledProtocolCodeSequence
    (0x0040_0009, "SH"), // ScheduledProcedureStepID
    (0x0040_0244, "DA"), // PerformedProcedureStepStartDate
    (0x0040_0245, "TM"), // PerformedProcedureStepStartTime
    (0x0040_0253, "SH"), // PerformedProcedureStepID
    (0x0040_0254, "LO"), // PerformedProcedureStepDescription
    (0x0040_0260, "SQ"), // PerformedProtocolCodeSequence
    (0x0040_0275, "SQ"), // RequestAttributesSequence
    (0x0040_08EA, "SQ"), // MeasurementUnitsCodeSequence
    (0x0040_1001, "SH"), // RequestedProcedureID
    (0x0040_100A, "SQ"), // ReasonForRequestedProcedureCodeSequence
    (0x0040_9096, "SQ"), // RealWorldValueMappingSequence
    (0x0040_A010, "CS"), // RelationshipType
    (0x0040_A040, "CS"), // ValueType
    (0x0040_A043, "SQ"), // ConceptNameCodeSequence
    (0x0040_A050, "CS"), // ContinuityOfContent
    (0x0040_A120, "DT"), // DateTime
    (0x0040_A121, "DA"), // Date
    (0x0040_A122, "TM"), // Time
    (0x0040_A123, "PN"), // PersonName
    (0x0040_A124, "UI"), // UID
    (0x0040_A160, "UT"), // TextValue
    (0x0040_A168, "SQ"), // ConceptCodeSequence
    (0x0040_A170, "SQ"), // PurposeOfReferenceCodeSequence
    (0x0040_A300, "SQ"), // MeasuredValueSequence
    (0x0040_A30A, "DS"), // NumericValue
    (0x0040_A491, "CS"), // CompletionFlag
    (0x0040_A493, "CS"), // VerificationFlag
    (0x0040_A504, "SQ"), // ContentTemplateSequence
    (0x0040_A730, "SQ"), // ContentSequence
    (0x0040_DB00, "CS"), // TemplateIdentifier
    (0x0062_000B, "US"), // ReferencedSegmentNumber
    (0x0088_0200, "SQ"), // IconImageSequence
    (0x0400_0561, "SQ"), // OriginalAttributesSequence
    (0x2050_0020, "CS"), // PresentationLUTShape
    (0x5200_9229, "SQ"), // SharedFunctionalGroupsSequence
    (0x5200_9230, "SQ"), // PerFrameFunctionalGroupsSequence
    (0x6000_0010, "US"), // OverlayRows (60xx: any overlay group)
    (0x6000_0011, "US"), // OverlayColumns (60xx: any overlay group)
    (0x6000_0015, "IS"), // NumberOfFramesInOverlay (60xx: any overlay group)
    (0x6000_0022, "LO"), // OverlayDescription (60xx: any overlay group)
    (0x6000_0040, "CS"), // OverlayType (60xx: any overlay group)
    (0x6000_0045, "LO"), // OverlaySubtype (60xx: any overlay group)
    (0x6000_0050, "SS"), // OverlayOrigin (60xx: any overlay group)
    (0x6000_0051, "US"), // ImageFrameOrigin (60xx: any overlay group)
    (0x6000_0100, "US"), // OverlayBitsAllocated (60xx: any overlay group)
    (0x6000_0102, "US"), // OverlayBitPosition (60xx: any overlay group)
    (0x6000_1301, "IS"), // ROIArea (60xx: any overlay group)
    (0x6000_1302, "DS"), // ROIMean (60xx: any overlay group)
    (0x6000_1303, "DS"), // ROIStandardDeviation (60xx: any overlay group)
    (0x6000_1500, "LO"), // OverlayLabel (60xx: any overlay group)
    (0x6000_3000, "OB or OW"), // OverlayData (60xx: any overlay group)
    (0x7FE0_0001, "OV"), // ExtendedOffsetTable
    (0x7FE0_0002, "OV"), // ExtendedOffsetTableLengths
    (0x7FE0_0008, "OF"), // FloatPixelData
    (0x7FE0_0009, "OD"), // DoubleFloatPixelData
    (0x7FE0_0010, "OB or OW"), // PixelData
    (0xFFFA_FFFA, "SQ"), // DigitalSignaturesSequence
    (0xFFFC_FFFC, "OB"), // DataSetTrailingPadding
];

#[cfg(test)]
mod tests {
    use super::super::element::KNOWN_VRS;
    use super::*;

    #[test]
    fn dictionary_is_sorted_and_well_formed() {
        assert!(DICTIONARY.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let ambiguous = ["US or SS", "OB or OW", "US or OW"];
        for (tag, vr) in DICTIONARY {
            let known = KNOWN_VRS.iter().any(|known| known == vr.as_bytes());
            assert!(known || ambiguous.contains(&vr), "{tag:08X} {vr}");
        }
    }

    #[test]
    fn looks_up_public_and_repeating_group_attributes() {
        assert_eq!(lookup(Tag::new(0x0010, 0x0010)), Some("PN"));
        assert_eq!(lookup(Tag::new(0x0028, 0x0106)), Some("US or SS"));
        assert_eq!(lookup(Tag::new(0x6000, 0x3000)), Some("OB or OW"));
        assert_eq!(lookup(Tag::new(0x601E, 0x0010)), Some("US"), "any overlay group");
        assert_eq!(lookup(Tag::new(0x0008, 0x9999)), None);
        assert_eq!(lookup(Tag::new(0x0000, 0x0000)), None);
    }
}
