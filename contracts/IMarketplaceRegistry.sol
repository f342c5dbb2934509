// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IMarketplaceRegistry
/// @notice The app and dataset registry of the Tasknet marketplace: who owns what, at what price, and who may
/// use it. The {IMarketplace} asks it once per posted job ({checkJob}) and once per closed job ({owners}).
/// @dev A separate contract only to keep each under the 24 KiB code-size limit. Its errors carry the
/// `Marketplace` prefix and are also declared in {IMarketplace}, so one ABI decodes every revert of a posting.
interface IMarketplaceRegistry {
    /// @notice An app. Two slots: owner(160) | price(88) | flags(8); imageDigest.
    struct App {
        address owner;
        uint88 price; // paid to the app owner per finished task
        uint8 flags; // bit 0 public (any requester), bit 1 deprecated
        bytes32 imageDigest; // sha256 digest of the OCI image
    }

    /// @notice A dataset. Two slots: owner(160) | price(88) | flags(8); checksum.
    struct Dataset {
        address owner;
        uint88 price; // paid to the dataset owner per finished task
        uint8 flags; // bit 0 any requester, bit 1 deprecated, bit 2 any app
        bytes32 checksum; // sha256 of the dataset content
    }


    /// @notice There is no app `appId`: raised by the app owner's calls and by {checkJob}.
    error MarketplaceUnknownApp(uint256 appId);
    /// @notice `caller` is not the owner of app `appId`: only the owner updates, restricts, deprecates or
    /// transfers it.
    error MarketplaceNotAppOwner(uint256 appId, address caller);
    /// @notice App `appId` is deprecated: {checkJob} admits no new job for it.
    error MarketplaceAppDeprecated(uint256 appId);
    /// @notice App `appId` is private and does not admit `requester` ({checkJob}).
    error MarketplaceAppAccessDenied(uint256 appId, address requester);
    /// @notice There is no dataset `datasetId`: raised by the dataset owner's calls and by {checkJob}.
    error MarketplaceUnknownDataset(uint256 datasetId);
    /// @notice `caller` is not the owner of dataset `datasetId`: only the owner updates, restricts, deprecates or
    /// transfers it.
    error MarketplaceNotDatasetOwner(uint256 datasetId, address caller);
    /// @notice Dataset `datasetId` is deprecated: {checkJob} admits no new job on it.
    error MarketplaceDatasetDeprecated(uint256 datasetId);
    /// @notice Dataset `datasetId` admits neither `requester` nor every requester, or neither app `appId` nor every
    /// app ({checkJob}).
    error MarketplaceDatasetAccessDenied(uint256 datasetId, uint256 appId, address requester);
    /// @notice {transferApp} or {transferDataset} to the zero address.
    error MarketplaceZeroAddress();

    /// @notice App `appId` was registered by `owner`: its image (by reference and pinned digest), metadata, price,
    /// visibility and deterministic file. The reference, metadata URI and file exist only in this event.
    event AppRegistered(
        uint256 indexed appId,
        address indexed owner,
        string imageRef,
        bytes32 imageDigest,
        string metadataURI,
        uint256 price,
        bool isPublic,
        string deterministicFile
    );
    /// @notice App `appId`'s metadata, price or visibility changed.
    event AppUpdated(uint256 indexed appId, string metadataURI, uint256 price, bool isPublic);
    /// @notice `requesters` were allowed (or no longer) to use private app `appId`.
    event AppRequestersSet(uint256 indexed appId, address[] requesters, bool allowed);
    /// @notice App `appId` accepts no new job.
    event AppDeprecated(uint256 indexed appId);
    /// @notice App `appId` changed owner.
    event AppTransferred(uint256 indexed appId, address indexed previousOwner, address indexed newOwner);

    /// @notice Dataset `datasetId` was registered by `owner` with its IPFS `cid` and `size` in bytes (both only in
    /// this event: a worker whose input cap is smaller never claims its jobs), sha256 `checksum`, price per use and
    /// access flags.
    event DatasetRegistered(
        uint256 indexed datasetId,
        address indexed owner,
        string cid,
        bytes32 checksum,
        uint256 size,
        uint256 price,
        bool anyRequester,
        bool anyApp
    );
    /// @notice Dataset `datasetId`'s price or access flags changed.
    event DatasetUpdated(uint256 indexed datasetId, uint256 price, bool anyRequester, bool anyApp);
    /// @notice `requesters` were allowed (or no longer) to use dataset `datasetId`.
    event DatasetRequestersSet(uint256 indexed datasetId, address[] requesters, bool allowed);
    /// @notice Apps `appIds` were allowed (or no longer) to read dataset `datasetId`.
    event DatasetAppsSet(uint256 indexed datasetId, uint32[] appIds, bool allowed);
    /// @notice Dataset `datasetId` accepts no new job.
    event DatasetDeprecated(uint256 indexed datasetId);
    /// @notice Dataset `datasetId` changed owner.
    event DatasetTransferred(uint256 indexed datasetId, address indexed previousOwner, address indexed newOwner);


    /// @notice Registers an app owned by the caller; returns its id (from 1).
    /// `deterministicFile` names the output file the result digest covers when the app is not
    /// bit-deterministic ("" = the whole output folder). Emits an {AppRegistered} event.
    function registerApp(
        string calldata imageRef,
        bytes32 imageDigest,
        string calldata metadataURI,
        uint88 price,
        bool isPublic,
        string calldata deterministicFile
    ) external returns (uint256 appId);

    /// @notice Updates an app's metadata URI, price (for jobs posted from now on) and visibility.
    /// Requirements: caller owns the app. Emits an {AppUpdated} event.
    function updateApp(uint256 appId, string calldata metadataURI, uint88 price, bool isPublic) external;

    /// @notice Adds (`allowed`) or removes requesters of a non-public app. Requirements: caller owns the app.
    /// Emits an {AppRequestersSet} event.
    function setAppRequesters(uint256 appId, address[] calldata requesters, bool allowed) external;

    /// @notice Deprecates an app: no new job may use it (running jobs finish). Requirements: caller owns it.
    /// Emits an {AppDeprecated} event.
    function deprecateApp(uint256 appId) external;

    /// @notice Transfers an app (and its future earnings) to `newOwner`. Requirements: caller owns it,
    /// `newOwner` is not zero. Emits an {AppTransferred} event.
    function transferApp(uint256 appId, address newOwner) external;

    /// @notice Registers a dataset owned by the caller; returns its id (from 1). `size` is the content's size in
    /// bytes (what a worker downloads), announced so that workers with a smaller input cap never claim its jobs.
    /// Emits a {DatasetRegistered} event.
    function registerDataset(
        string calldata cid,
        bytes32 checksum,
        uint64 size,
        uint88 price,
        bool anyRequester,
        bool anyApp
    ) external returns (uint256 datasetId);

    /// @notice Updates a dataset's price and access flags. Requirements: caller owns it.
    /// Emits a {DatasetUpdated} event.
    function updateDataset(uint256 datasetId, uint88 price, bool anyRequester, bool anyApp) external;

    /// @notice Adds or removes allowed requesters of a dataset. Requirements: caller owns it.
    /// Emits a {DatasetRequestersSet} event.
    function setDatasetRequesters(uint256 datasetId, address[] calldata requesters, bool allowed) external;

    /// @notice Adds or removes allowed apps of a dataset. Requirements: caller owns it.
    /// Emits a {DatasetAppsSet} event.
    function setDatasetApps(uint256 datasetId, uint32[] calldata appIds, bool allowed) external;

    /// @notice Deprecates a dataset: no new job may use it. Requirements: caller owns it.
    /// Emits a {DatasetDeprecated} event.
    function deprecateDataset(uint256 datasetId) external;

    /// @notice Transfers a dataset (and its future earnings) to `newOwner`. Requirements: caller owns it,
    /// `newOwner` is not zero. Emits a {DatasetTransferred} event.
    function transferDataset(uint256 datasetId, address newOwner) external;


    /// @notice Checks that `requester` may post a job of `appId` with `datasetId` (0 = none); returns the prices
    /// the job locks per task. Reverts with the access error otherwise.
    function checkJob(uint256 appId, uint256 datasetId, address requester)
        external
        view
        returns (uint88 appPrice, uint88 datasetPrice);

    /// @notice Current owners of an app and a dataset (0 when `datasetId` is 0): who a closing job pays.
    function owners(uint256 appId, uint256 datasetId) external view returns (address appOwner, address datasetOwner);

    /// @notice An app's stored part (the rest is in {AppRegistered}).
    function getApp(uint256 appId) external view returns (App memory);
    /// @notice A dataset's stored part (the rest is in {DatasetRegistered}).
    function getDataset(uint256 datasetId) external view returns (Dataset memory);
    /// @notice Whether `requester` may use app `appId` (public or allow-listed).
    function appAllows(uint256 appId, address requester) external view returns (bool);
    /// @notice Whether `requester` running app `appId` may use dataset `datasetId`.
    function datasetAllows(uint256 datasetId, uint256 appId, address requester) external view returns (bool);
    /// @notice Number of apps registered (ids are 1 .. appCount).
    function appCount() external view returns (uint256);
    /// @notice Number of datasets registered (ids are 1 .. datasetCount).
    function datasetCount() external view returns (uint256);
}
