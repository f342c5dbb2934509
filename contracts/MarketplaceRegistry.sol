// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplaceRegistry} from "./IMarketplaceRegistry.sol";

/// @title MarketplaceRegistry
/// @notice Apps and datasets of the Tasknet marketplace (see {IMarketplaceRegistry}). Ids start at 1.
contract MarketplaceRegistry is IMarketplaceRegistry {
    uint8 private constant _PUBLIC = 1; // app: any requester; dataset: any requester
    uint8 private constant _DEPRECATED = 2;
    uint8 private constant _ANY_APP = 4; // dataset: any app

    uint32 private _appCount;
    uint32 private _datasetCount;
    mapping(uint256 appId => App) private _apps;
    mapping(uint256 appId => mapping(address requester => bool)) private _appRequesters;
    mapping(uint256 datasetId => Dataset) private _datasets;
    mapping(uint256 datasetId => mapping(address requester => bool)) private _datasetRequesters;
    mapping(uint256 datasetId => mapping(uint256 appId => bool)) private _datasetApps;

    // =============================================================================================
    // Apps and datasets
    // =============================================================================================

    /// @inheritdoc IMarketplaceRegistry
    function registerApp(
        string calldata imageRef,
        bytes32 imageDigest,
        string calldata metadataURI,
        uint88 price,
        bool isPublic,
        string calldata deterministicFile
    ) external returns (uint256 appId) {
        appId = ++_appCount;
        _apps[appId] = App({owner: msg.sender, price: price, flags: isPublic ? _PUBLIC : 0, imageDigest: imageDigest});
        emit AppRegistered(appId, msg.sender, imageRef, imageDigest, metadataURI, price, isPublic, deterministicFile);
    }

    /// @inheritdoc IMarketplaceRegistry
    function updateApp(uint256 appId, string calldata metadataURI, uint88 price, bool isPublic) external {
        App storage app = _ownedApp(appId);
        app.price = price;
        app.flags = (app.flags & ~_PUBLIC) | (isPublic ? _PUBLIC : 0);
        emit AppUpdated(appId, metadataURI, price, isPublic);
    }

    /// @inheritdoc IMarketplaceRegistry
    function setAppRequesters(uint256 appId, address[] calldata requesters, bool allowed) external {
        _ownedApp(appId);
        for (uint256 i = 0; i < requesters.length; ++i) {
            _appRequesters[appId][requesters[i]] = allowed;
        }
        emit AppRequestersSet(appId, requesters, allowed);
    }

    /// @inheritdoc IMarketplaceRegistry
    function deprecateApp(uint256 appId) external {
        _ownedApp(appId).flags |= _DEPRECATED;
        emit AppDeprecated(appId);
    }

    /// @inheritdoc IMarketplaceRegistry
    function transferApp(uint256 appId, address newOwner) external {
        if (newOwner == address(0)) revert MarketplaceZeroAddress();
        App storage app = _ownedApp(appId);
        app.owner = newOwner;
        emit AppTransferred(appId, msg.sender, newOwner);
    }

    /// @inheritdoc IMarketplaceRegistry
    function registerDataset(
        string calldata cid,
        bytes32 checksum,
        uint64 size,
        uint88 price,
        bool anyRequester,
        bool anyApp
    ) external returns (uint256 datasetId) {
        datasetId = ++_datasetCount;
        _datasets[datasetId] = Dataset({
            owner: msg.sender,
            price: price,
            flags: (anyRequester ? _PUBLIC : 0) | (anyApp ? _ANY_APP : 0),
            checksum: checksum
        });
        emit DatasetRegistered(datasetId, msg.sender, cid, checksum, size, price, anyRequester, anyApp);
    }

    /// @inheritdoc IMarketplaceRegistry
    function updateDataset(uint256 datasetId, uint88 price, bool anyRequester, bool anyApp) external {
        Dataset storage ds = _ownedDataset(datasetId);
        ds.price = price;
        ds.flags = (ds.flags & _DEPRECATED) | (anyRequester ? _PUBLIC : 0) | (anyApp ? _ANY_APP : 0);
        emit DatasetUpdated(datasetId, price, anyRequester, anyApp);
    }

    /// @inheritdoc IMarketplaceRegistry
    function setDatasetRequesters(uint256 datasetId, address[] calldata requesters, bool allowed) external {
        _ownedDataset(datasetId);
        for (uint256 i = 0; i < requesters.length; ++i) {
            _datasetRequesters[datasetId][requesters[i]] = allowed;
        }
        emit DatasetRequestersSet(datasetId, requesters, allowed);
    }

    /// @inheritdoc IMarketplaceRegistry
    function setDatasetApps(uint256 datasetId, uint32[] calldata appIds, bool allowed) external {
        _ownedDataset(datasetId);
        for (uint256 i = 0; i < appIds.length; ++i) {
            _datasetApps[datasetId][appIds[i]] = allowed;
        }
        emit DatasetAppsSet(datasetId, appIds, allowed);
    }

    /// @inheritdoc IMarketplaceRegistry
    function deprecateDataset(uint256 datasetId) external {
        _ownedDataset(datasetId).flags |= _DEPRECATED;
        emit DatasetDeprecated(datasetId);
    }

    /// @inheritdoc IMarketplaceRegistry
    function transferDataset(uint256 datasetId, address newOwner) external {
        if (newOwner == address(0)) revert MarketplaceZeroAddress();
        Dataset storage ds = _ownedDataset(datasetId);
        ds.owner = newOwner;
        emit DatasetTransferred(datasetId, msg.sender, newOwner);
    }

    /// @inheritdoc IMarketplaceRegistry
    function checkJob(uint256 appId, uint256 datasetId, address requester)
        external
        view
        returns (uint88 appPrice, uint88 datasetPrice)
    {
        appPrice = _checkApp(appId, requester);
        if (datasetId != 0) datasetPrice = _checkDataset(datasetId, appId, requester);
    }

    /// @inheritdoc IMarketplaceRegistry
    function owners(uint256 appId, uint256 datasetId) external view returns (address, address) {
        return (_apps[appId].owner, datasetId == 0 ? address(0) : _datasets[datasetId].owner);
    }

    /// @inheritdoc IMarketplaceRegistry
    function getApp(uint256 appId) external view returns (App memory) {
        return _apps[appId];
    }

    /// @inheritdoc IMarketplaceRegistry
    function getDataset(uint256 datasetId) external view returns (Dataset memory) {
        return _datasets[datasetId];
    }

    /// @inheritdoc IMarketplaceRegistry
    function appAllows(uint256 appId, address requester) external view returns (bool) {
        return _apps[appId].flags & _PUBLIC != 0 || _appRequesters[appId][requester];
    }

    /// @inheritdoc IMarketplaceRegistry
    function datasetAllows(uint256 datasetId, uint256 appId, address requester) external view returns (bool) {
        uint8 flags = _datasets[datasetId].flags;
        return (flags & _PUBLIC != 0 || _datasetRequesters[datasetId][requester])
            && (flags & _ANY_APP != 0 || _datasetApps[datasetId][appId]);
    }

    /// @inheritdoc IMarketplaceRegistry
    function appCount() external view returns (uint256) {
        return _appCount;
    }

    /// @inheritdoc IMarketplaceRegistry
    function datasetCount() external view returns (uint256) {
        return _datasetCount;
    }

    // =============================================================================================
    // Internal
    // =============================================================================================

    function _ownedApp(uint256 appId) private view returns (App storage app) {
        app = _apps[appId];
        if (app.owner == address(0)) revert MarketplaceUnknownApp(appId);
        if (app.owner != msg.sender) revert MarketplaceNotAppOwner(appId, msg.sender);
    }

    function _ownedDataset(uint256 datasetId) private view returns (Dataset storage ds) {
        ds = _datasets[datasetId];
        if (ds.owner == address(0)) revert MarketplaceUnknownDataset(datasetId);
        if (ds.owner != msg.sender) revert MarketplaceNotDatasetOwner(datasetId, msg.sender);
    }

    function _checkApp(uint256 appId, address requester) private view returns (uint88) {
        App storage app = _apps[appId];
        if (app.owner == address(0)) revert MarketplaceUnknownApp(appId);
        uint8 flags = app.flags;
        if (flags & _DEPRECATED != 0) revert MarketplaceAppDeprecated(appId);
        if (flags & _PUBLIC == 0 && !_appRequesters[appId][requester]) {
            revert MarketplaceAppAccessDenied(appId, requester);
        }
        return app.price;
    }

    function _checkDataset(uint256 datasetId, uint256 appId, address requester) private view returns (uint88) {
        Dataset storage ds = _datasets[datasetId];
        if (ds.owner == address(0)) revert MarketplaceUnknownDataset(datasetId);
        uint8 flags = ds.flags;
        if (flags & _DEPRECATED != 0) revert MarketplaceDatasetDeprecated(datasetId);
        if (
            (flags & _PUBLIC == 0 && !_datasetRequesters[datasetId][requester])
                || (flags & _ANY_APP == 0 && !_datasetApps[datasetId][appId])
        ) revert MarketplaceDatasetAccessDenied(datasetId, appId, requester);
        return ds.price;
    }
}
